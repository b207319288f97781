-- +goose Up
-- An Idempotency-Key claim is a lease renewed by a heartbeat while its request
-- runs; claim_token names the holder, so renewing, completing or releasing the
-- claim succeeds only for the process that holds it, and a retry that takes
-- over an expired claim (its process died) fences the old holder out.
ALTER TABLE idempotency_keys ADD COLUMN claim_token TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN claim_token;
