-- +goose NO TRANSACTION
-- +goose Up
-- Authorise now, capture on fulfilment (issue 19, `serve --capture manual`):
-- a charge may be authorised only (authorized) until the order's fulfilment
-- captures all or less of it; an order waits as authorized, remembers what was
-- authorised, the points it gave back for cancelled lines and how far its
-- fulfilment got; an order line and a reservation line count the units
-- cancelled and restocked. SQLite cannot change a CHECK constraint, so
-- payment_charges and orders are rebuilt (foreign keys off, copy, drop,
-- rename, indexes again), as in 00056.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE payment_charges_new (
    id              TEXT    PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    amount          BIGINT  NOT NULL,
    currency        TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('requires_action', 'authorized', 'succeeded', 'declined', 'voided', 'partially_refunded', 'refunded')),
    decline_code    TEXT    NOT NULL DEFAULT '',
    soft_decline    BOOLEAN NOT NULL DEFAULT FALSE,
    refunded_amount BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    client_secret   TEXT    NOT NULL DEFAULT '',
    capture_manual  BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO payment_charges_new (id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at, client_secret)
    SELECT id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at, client_secret FROM payment_charges;
DROP TABLE payment_charges;
ALTER TABLE payment_charges_new RENAME TO payment_charges;
CREATE INDEX payment_charges_client_secret ON payment_charges (client_secret) WHERE client_secret <> '';
CREATE TABLE orders_new (
    id                TEXT   PRIMARY KEY,
    checkout_id       TEXT   NOT NULL UNIQUE,
    member_id         TEXT   NOT NULL DEFAULT '',
    status            TEXT   NOT NULL CHECK (status IN ('pending', 'authorized', 'paid', 'confirmed', 'cancelled', 'partially_refunded', 'refunded')),
    currency          TEXT   NOT NULL,
    total_amount      BIGINT NOT NULL,
    points_redeemed   BIGINT NOT NULL DEFAULT 0,
    points_amount     BIGINT NOT NULL DEFAULT 0,
    charged_amount    BIGINT NOT NULL DEFAULT 0,
    charge_id         TEXT   NOT NULL DEFAULT '',
    points_earned     BIGINT NOT NULL DEFAULT 0,
    refunded_amount   BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    authorized_amount BIGINT NOT NULL DEFAULT 0,
    points_returned   BIGINT NOT NULL DEFAULT 0,
    fulfilment        TEXT   NOT NULL DEFAULT '' CHECK (fulfilment IN ('', 'started', 'done'))
);
INSERT INTO orders_new (id, checkout_id, member_id, status, currency, total_amount, points_redeemed, points_amount, charged_amount, charge_id, points_earned, refunded_amount, created_at, updated_at)
    SELECT id, checkout_id, member_id, status, currency, total_amount, points_redeemed, points_amount, charged_amount, charge_id, points_earned, refunded_amount, created_at, updated_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_member ON orders (member_id, created_at);
CREATE INDEX orders_charge ON orders (charge_id);
COMMIT;
PRAGMA foreign_keys = ON;
ALTER TABLE order_items ADD COLUMN cancelled_quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservation_items ADD COLUMN returned_quantity BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE reservation_items DROP COLUMN returned_quantity;
ALTER TABLE order_items DROP COLUMN cancelled_quantity;
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
INSERT INTO payment_charges_new (id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, updated_at, client_secret)
    SELECT id, idempotency_key, amount, currency, CASE status WHEN 'authorized' THEN 'succeeded' ELSE status END, decline_code, soft_decline, refunded_amount, created_at, updated_at, client_secret FROM payment_charges;
DROP TABLE payment_charges;
ALTER TABLE payment_charges_new RENAME TO payment_charges;
CREATE INDEX payment_charges_client_secret ON payment_charges (client_secret) WHERE client_secret <> '';
CREATE TABLE orders_new (
    id              TEXT   PRIMARY KEY,
    checkout_id     TEXT   NOT NULL UNIQUE,
    member_id       TEXT   NOT NULL DEFAULT '',
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'paid', 'confirmed', 'cancelled', 'partially_refunded', 'refunded')),
    currency        TEXT   NOT NULL,
    total_amount    BIGINT NOT NULL,
    points_redeemed BIGINT NOT NULL DEFAULT 0,
    points_amount   BIGINT NOT NULL DEFAULT 0,
    charged_amount  BIGINT NOT NULL DEFAULT 0,
    charge_id       TEXT   NOT NULL DEFAULT '',
    points_earned   BIGINT NOT NULL DEFAULT 0,
    refunded_amount BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
INSERT INTO orders_new (id, checkout_id, member_id, status, currency, total_amount, points_redeemed, points_amount, charged_amount, charge_id, points_earned, refunded_amount, created_at, updated_at)
    SELECT id, checkout_id, member_id, CASE status WHEN 'authorized' THEN 'paid' ELSE status END, currency, total_amount, points_redeemed, points_amount, charged_amount, charge_id, points_earned, refunded_amount, created_at, updated_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_member ON orders (member_id, created_at);
CREATE INDEX orders_charge ON orders (charge_id);
COMMIT;
PRAGMA foreign_keys = ON;
