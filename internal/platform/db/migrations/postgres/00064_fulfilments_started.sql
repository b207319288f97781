-- +goose NO TRANSACTION
-- +goose Up
-- The checkout recovery pass finishes a manual-capture fulfilment a crash
-- left half done (fulfilment = 'started': planned, maybe captured, not yet
-- restocked, earned and confirmed). A partial index keeps its look-up small;
-- built concurrently so orders stay writable, and droppable first so the
-- statement can run again after a failure halfway.
DROP INDEX CONCURRENTLY IF EXISTS orders_fulfilment_started;
CREATE INDEX CONCURRENTLY orders_fulfilment_started ON orders (updated_at) WHERE fulfilment = 'started';

-- +goose Down
DROP INDEX IF EXISTS orders_fulfilment_started;
