-- +goose Up
-- The checkout recovery pass finishes a manual-capture fulfilment a crash
-- left half done (fulfilment = 'started'); a partial index keeps its look-up
-- small.
CREATE INDEX IF NOT EXISTS orders_fulfilment_started ON orders (updated_at) WHERE fulfilment = 'started';

-- +goose Down
DROP INDEX IF EXISTS orders_fulfilment_started;
