-- +goose NO TRANSACTION
-- +goose Up
-- 3-D Secure (issue 19): a charge may wait for the customer to authenticate
-- (requires_action), and so may the checkout that made it. The simulator keeps
-- the client secret it hands out; a checkout keeps when its authentication
-- window ends and a hash of the client secret (which a guest shows to read or
-- confirm it), and is found by its charge for the webhook. SQLite cannot
-- change a CHECK constraint, so both tables are rebuilt (foreign keys off,
-- copy, drop, rename, indexes again), as in 00020.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE payment_charges_new (
    id              TEXT    PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    amount          BIGINT  NOT NULL,
    currency        TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('requires_action', 'succeeded', 'declined', 'voided', 'partially_refunded', 'refunded')),
    decline_code    TEXT    NOT NULL DEFAULT '',
    soft_decline    BOOLEAN NOT NULL DEFAULT FALSE,
    refunded_amount BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    client_secret   TEXT    NOT NULL DEFAULT ''
);
INSERT INTO payment_charges_new (id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at)
    SELECT id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at FROM payment_charges;
DROP TABLE payment_charges;
ALTER TABLE payment_charges_new RENAME TO payment_charges;
CREATE INDEX payment_charges_client_secret ON payment_charges (client_secret) WHERE client_secret <> '';
CREATE TABLE checkouts_new (
    id               TEXT   PRIMARY KEY,
    cart_id          TEXT   NOT NULL,
    member_id        TEXT   NOT NULL DEFAULT '',
    email            TEXT   NOT NULL DEFAULT '',
    request_hash     TEXT   NOT NULL,
    state            TEXT   NOT NULL CHECK (state IN ('in_progress', 'requires_action', 'completed', 'failed')),
    step             TEXT   NOT NULL,
    currency         TEXT   NOT NULL DEFAULT '',
    total_amount     BIGINT NOT NULL DEFAULT 0,
    points_redeemed  BIGINT NOT NULL DEFAULT 0,
    points_amount    BIGINT NOT NULL DEFAULT 0,
    items            TEXT   NOT NULL DEFAULT '',
    reservation_id   TEXT   NOT NULL DEFAULT '',
    points_hold_id   TEXT   NOT NULL DEFAULT '',
    charge_id        TEXT   NOT NULL DEFAULT '',
    order_id         TEXT   NOT NULL DEFAULT '',
    points_earned    BIGINT NOT NULL DEFAULT 0,
    failure_step     TEXT   NOT NULL DEFAULT '',
    failure_kind     TEXT   NOT NULL DEFAULT '',
    failure_code     TEXT   NOT NULL DEFAULT '',
    failure_message  TEXT   NOT NULL DEFAULT '',
    trace_id         TEXT   NOT NULL DEFAULT '',
    traceparent      TEXT   NOT NULL DEFAULT '',
    lease_token      TEXT   NOT NULL DEFAULT '',
    lease_until      BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    action_expires_at BIGINT NOT NULL DEFAULT 0,
    client_secret_hash TEXT NOT NULL DEFAULT ''
);
INSERT INTO checkouts_new (id, cart_id, member_id, email, request_hash, state, step, currency, total_amount, points_redeemed, points_amount, items, reservation_id, points_hold_id, charge_id, order_id, points_earned, failure_step, failure_kind, failure_code, failure_message, trace_id, traceparent, lease_token, lease_until, created_at, updated_at)
    SELECT id, cart_id, member_id, email, request_hash, state, step, currency, total_amount, points_redeemed, points_amount, items, reservation_id, points_hold_id, charge_id, order_id, points_earned, failure_step, failure_kind, failure_code, failure_message, trace_id, traceparent, lease_token, lease_until, created_at, updated_at FROM checkouts;
DROP TABLE checkouts;
ALTER TABLE checkouts_new RENAME TO checkouts;
CREATE INDEX checkouts_open ON checkouts (state, lease_until);
CREATE INDEX checkouts_in_progress_cart ON checkouts (cart_id) WHERE state = 'in_progress';
CREATE INDEX checkouts_failed_with_email ON checkouts (updated_at) WHERE state = 'failed' AND email <> '';
CREATE INDEX checkouts_charge ON checkouts (charge_id) WHERE charge_id <> '';
CREATE INDEX checkouts_waiting ON checkouts (action_expires_at) WHERE state = 'requires_action';
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE payment_charges_new (
    id              TEXT    PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    amount          BIGINT  NOT NULL,
    currency        TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('succeeded', 'declined', 'voided', 'partially_refunded', 'refunded')),
    decline_code    TEXT    NOT NULL DEFAULT '',
    soft_decline    BOOLEAN NOT NULL DEFAULT FALSE,
    refunded_amount BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
INSERT INTO payment_charges_new (id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at)
    SELECT id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at FROM payment_charges;
DROP TABLE payment_charges;
ALTER TABLE payment_charges_new RENAME TO payment_charges;
CREATE TABLE checkouts_new (
    id               TEXT   PRIMARY KEY,
    cart_id          TEXT   NOT NULL,
    member_id        TEXT   NOT NULL DEFAULT '',
    email            TEXT   NOT NULL DEFAULT '',
    request_hash     TEXT   NOT NULL,
    state            TEXT   NOT NULL CHECK (state IN ('in_progress', 'completed', 'failed')),
    step             TEXT   NOT NULL,
    currency         TEXT   NOT NULL DEFAULT '',
    total_amount     BIGINT NOT NULL DEFAULT 0,
    points_redeemed  BIGINT NOT NULL DEFAULT 0,
    points_amount    BIGINT NOT NULL DEFAULT 0,
    items            TEXT   NOT NULL DEFAULT '',
    reservation_id   TEXT   NOT NULL DEFAULT '',
    points_hold_id   TEXT   NOT NULL DEFAULT '',
    charge_id        TEXT   NOT NULL DEFAULT '',
    order_id         TEXT   NOT NULL DEFAULT '',
    points_earned    BIGINT NOT NULL DEFAULT 0,
    failure_step     TEXT   NOT NULL DEFAULT '',
    failure_kind     TEXT   NOT NULL DEFAULT '',
    failure_code     TEXT   NOT NULL DEFAULT '',
    failure_message  TEXT   NOT NULL DEFAULT '',
    trace_id         TEXT   NOT NULL DEFAULT '',
    traceparent      TEXT   NOT NULL DEFAULT '',
    lease_token      TEXT   NOT NULL DEFAULT '',
    lease_until      BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
INSERT INTO checkouts_new (id, cart_id, member_id, email, request_hash, state, step, currency, total_amount, points_redeemed, points_amount, items, reservation_id, points_hold_id, charge_id, order_id, points_earned, failure_step, failure_kind, failure_code, failure_message, trace_id, traceparent, lease_token, lease_until, created_at, updated_at)
    SELECT id, cart_id, member_id, email, request_hash, state, step, currency, total_amount, points_redeemed, points_amount, items, reservation_id, points_hold_id, charge_id, order_id, points_earned, failure_step, failure_kind, failure_code, failure_message, trace_id, traceparent, lease_token, lease_until, created_at, updated_at FROM checkouts;
DROP TABLE checkouts;
ALTER TABLE checkouts_new RENAME TO checkouts;
CREATE INDEX checkouts_open ON checkouts (state, lease_until);
CREATE INDEX checkouts_in_progress_cart ON checkouts (cart_id) WHERE state = 'in_progress';
CREATE INDEX checkouts_failed_with_email ON checkouts (updated_at) WHERE state = 'failed' AND email <> '';
COMMIT;
PRAGMA foreign_keys = ON;
