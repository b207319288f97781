-- +goose NO TRANSACTION
-- +goose Up
-- 3-D Secure (issue 19): a charge may wait for the customer to authenticate
-- (requires_action), and so may the checkout that made it. The simulator keeps
-- the client secret it hands out; a checkout keeps when its authentication
-- window ends and a hash of the client secret (which a guest shows to read or
-- confirm it), and is found by its charge for the webhook. Outside a
-- transaction (the indexes build concurrently), every statement can run again
-- after a failure halfway; the widened CHECKs are added NOT VALID and then
-- validated, which does not block writes while it scans.
ALTER TABLE payment_charges DROP CONSTRAINT IF EXISTS payment_charges_status_check;
ALTER TABLE payment_charges ADD CONSTRAINT payment_charges_status_check
    CHECK (status IN ('requires_action', 'succeeded', 'declined', 'voided', 'partially_refunded', 'refunded')) NOT VALID;
ALTER TABLE payment_charges VALIDATE CONSTRAINT payment_charges_status_check;
ALTER TABLE payment_charges ADD COLUMN IF NOT EXISTS client_secret TEXT NOT NULL DEFAULT '';
DROP INDEX CONCURRENTLY IF EXISTS payment_charges_client_secret;
CREATE INDEX CONCURRENTLY payment_charges_client_secret ON payment_charges (client_secret) WHERE client_secret <> '';

ALTER TABLE checkouts DROP CONSTRAINT IF EXISTS checkouts_state_check;
ALTER TABLE checkouts ADD CONSTRAINT checkouts_state_check
    CHECK (state IN ('in_progress', 'requires_action', 'completed', 'failed')) NOT VALID;
ALTER TABLE checkouts VALIDATE CONSTRAINT checkouts_state_check;
ALTER TABLE checkouts ADD COLUMN IF NOT EXISTS action_expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE checkouts ADD COLUMN IF NOT EXISTS client_secret_hash TEXT NOT NULL DEFAULT '';
DROP INDEX CONCURRENTLY IF EXISTS checkouts_charge;
CREATE INDEX CONCURRENTLY checkouts_charge ON checkouts (charge_id) WHERE charge_id <> '';
DROP INDEX CONCURRENTLY IF EXISTS checkouts_waiting;
CREATE INDEX CONCURRENTLY checkouts_waiting ON checkouts (action_expires_at) WHERE state = 'requires_action';

-- +goose Down
DROP INDEX IF EXISTS checkouts_waiting;
DROP INDEX IF EXISTS checkouts_charge;
ALTER TABLE checkouts DROP COLUMN IF EXISTS client_secret_hash;
ALTER TABLE checkouts DROP COLUMN IF EXISTS action_expires_at;
ALTER TABLE checkouts DROP CONSTRAINT IF EXISTS checkouts_state_check;
ALTER TABLE checkouts ADD CONSTRAINT checkouts_state_check CHECK (state IN ('in_progress', 'completed', 'failed'));
DROP INDEX IF EXISTS payment_charges_client_secret;
ALTER TABLE payment_charges DROP COLUMN IF EXISTS client_secret;
ALTER TABLE payment_charges DROP CONSTRAINT IF EXISTS payment_charges_status_check;
ALTER TABLE payment_charges ADD CONSTRAINT payment_charges_status_check
    CHECK (status IN ('succeeded', 'declined', 'voided', 'partially_refunded', 'refunded'));
