-- +goose Up
-- Verify matches every charge to its order and every order to its confirmation;
-- without these indexes those checks grew with the square of the data.
CREATE INDEX orders_charge ON orders (charge_id);
CREATE INDEX outbox_reference ON outbox (kind, reference);

-- +goose Down
DROP INDEX outbox_reference;
DROP INDEX orders_charge;
