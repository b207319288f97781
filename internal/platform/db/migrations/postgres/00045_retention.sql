-- +goose Up
-- Retention (the retention job, docs/security.md): abandoned carts are found by
-- their last change; a cart an in-progress checkout names is kept (one probe
-- of a partial index that holds only running checkouts); failed checkouts
-- still holding an email are found by their last change (a partial index that
-- empties as they are scrubbed). Idempotency keys use idempotency_keys_created.
CREATE INDEX carts_updated ON carts (updated_at);
CREATE INDEX checkouts_in_progress_cart ON checkouts (cart_id) WHERE state = 'in_progress';
CREATE INDEX checkouts_failed_with_email ON checkouts (updated_at) WHERE state = 'failed' AND email <> '';

-- +goose Down
DROP INDEX checkouts_failed_with_email;
DROP INDEX checkouts_in_progress_cart;
DROP INDEX carts_updated;
