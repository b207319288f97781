-- +goose NO TRANSACTION
-- +goose Up
-- Authorise now, capture on fulfilment (issue 19, `serve --capture manual`):
-- a charge may be authorised only (authorized) until the order's fulfilment
-- captures all or less of it; an order waits as authorized, remembers what was
-- authorised, the points it gave back for cancelled lines and how far its
-- fulfilment got; an order line and a reservation line count the units
-- cancelled and restocked. Every statement can run again after a failure
-- halfway; the widened CHECKs are added NOT VALID and then validated, which
-- does not block writes while it scans.
ALTER TABLE payment_charges DROP CONSTRAINT IF EXISTS payment_charges_status_check;
ALTER TABLE payment_charges ADD CONSTRAINT payment_charges_status_check
    CHECK (status IN ('requires_action', 'authorized', 'succeeded', 'declined', 'voided', 'partially_refunded', 'refunded')) NOT VALID;
ALTER TABLE payment_charges VALIDATE CONSTRAINT payment_charges_status_check;
ALTER TABLE payment_charges ADD COLUMN IF NOT EXISTS capture_manual BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'authorized', 'paid', 'confirmed', 'cancelled', 'partially_refunded', 'refunded')) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_status_check;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS authorized_amount BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS points_returned BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS fulfilment TEXT NOT NULL DEFAULT '';
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_fulfilment_check;
ALTER TABLE orders ADD CONSTRAINT orders_fulfilment_check CHECK (fulfilment IN ('', 'started', 'done')) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_fulfilment_check;
ALTER TABLE order_items ADD COLUMN IF NOT EXISTS cancelled_quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservation_items ADD COLUMN IF NOT EXISTS returned_quantity BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE reservation_items DROP COLUMN IF EXISTS returned_quantity;
ALTER TABLE order_items DROP COLUMN IF EXISTS cancelled_quantity;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_fulfilment_check;
ALTER TABLE orders DROP COLUMN IF EXISTS fulfilment;
ALTER TABLE orders DROP COLUMN IF EXISTS points_returned;
ALTER TABLE orders DROP COLUMN IF EXISTS authorized_amount;
UPDATE orders SET status = 'paid' WHERE status = 'authorized';
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'paid', 'confirmed', 'cancelled', 'partially_refunded', 'refunded'));
UPDATE payment_charges SET status = 'succeeded' WHERE status = 'authorized';
ALTER TABLE payment_charges DROP COLUMN IF EXISTS capture_manual;
ALTER TABLE payment_charges DROP CONSTRAINT IF EXISTS payment_charges_status_check;
ALTER TABLE payment_charges ADD CONSTRAINT payment_charges_status_check
    CHECK (status IN ('requires_action', 'succeeded', 'declined', 'voided', 'partially_refunded', 'refunded'));
