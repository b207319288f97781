-- +goose Up
-- Checkout: catalog, stock and reservations, carts, the payment simulator's
-- ledger, orders, the confirmation outbox and the checkout saga's state.
-- Timestamps are Unix microseconds; money is BIGINT minor units + currency.

CREATE TABLE products (
    id             TEXT   PRIMARY KEY,
    sku            TEXT   NOT NULL UNIQUE,
    name           TEXT   NOT NULL,
    price_amount   BIGINT NOT NULL CHECK (price_amount >= 0),
    price_currency TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE inventory (
    product_id TEXT   PRIMARY KEY,
    available  BIGINT NOT NULL CHECK (available >= 0),
    updated_at BIGINT NOT NULL
);

-- One reservation per checkout (reference = checkout id): all its items or none.
CREATE TABLE reservations (
    id         TEXT   PRIMARY KEY,
    reference  TEXT   NOT NULL UNIQUE,
    state      TEXT   NOT NULL CHECK (state IN ('held', 'committed', 'released')),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX reservations_held_expiry ON reservations (state, expires_at);

CREATE TABLE reservation_items (
    reservation_id TEXT   NOT NULL,
    product_id     TEXT   NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);

-- checkout_id is set while a checkout holds the cart, so one cart yields one order.
CREATE TABLE carts (
    id          TEXT   PRIMARY KEY,
    member_id   TEXT   NOT NULL DEFAULT '',
    checkout_id TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE cart_items (
    cart_id             TEXT   NOT NULL,
    product_id          TEXT   NOT NULL,
    quantity            BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_amount   BIGINT NOT NULL,
    unit_price_currency TEXT   NOT NULL,
    added_at            BIGINT NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);

-- The built-in payment simulator's charges: one row per idempotency key, so a
-- retried or recovered charge finds the first one instead of charging twice.
CREATE TABLE payment_charges (
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

CREATE TABLE payment_refunds (
    id              TEXT   PRIMARY KEY,
    charge_id       TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL UNIQUE,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    created_at      BIGINT NOT NULL
);

-- Fault injection for the simulator; one row, shared by every replica.
CREATE TABLE payment_faults (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    latency_ms           BIGINT  NOT NULL DEFAULT 0,
    decline_rate_percent BIGINT  NOT NULL DEFAULT 0,
    decline_code         TEXT    NOT NULL DEFAULT 'generic_decline',
    updated_at           BIGINT  NOT NULL
);
INSERT INTO payment_faults (id, latency_ms, decline_rate_percent, decline_code, updated_at) VALUES (1, 0, 0, 'generic_decline', 0);

CREATE TABLE orders (
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
CREATE INDEX orders_member ON orders (member_id, created_at);

CREATE TABLE order_items (
    order_id          TEXT   NOT NULL,
    product_id        TEXT   NOT NULL,
    sku               TEXT   NOT NULL,
    name              TEXT   NOT NULL,
    quantity          BIGINT NOT NULL,
    unit_price_amount BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE order_refunds (
    id         TEXT    PRIMARY KEY,
    order_id   TEXT    NOT NULL,
    amount     BIGINT  NOT NULL,
    full_refund BOOLEAN NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX order_refunds_order ON order_refunds (order_id);

-- The transactional outbox: written in the order's transaction, delivered by
-- the notify worker. claim_token/claimed_until let one replica own a row.
CREATE TABLE outbox (
    id              TEXT   PRIMARY KEY,
    kind            TEXT   NOT NULL,
    reference       TEXT   NOT NULL,
    recipient       TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    traceparent     TEXT   NOT NULL DEFAULT '',
    state           TEXT   NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT NOT NULL DEFAULT 0,
    claim_token     TEXT   NOT NULL DEFAULT '',
    last_error      TEXT   NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- The checkout saga: one row per (caller, Idempotency-Key), recording the step
-- in progress and every external effect, so recovery can resume or compensate.
CREATE TABLE checkouts (
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
CREATE INDEX checkouts_open ON checkouts (state, lease_until);

-- +goose Down
DROP TABLE checkouts;
DROP TABLE outbox;
DROP TABLE order_refunds;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE payment_faults;
DROP TABLE payment_refunds;
DROP TABLE payment_charges;
DROP TABLE cart_items;
DROP TABLE carts;
DROP TABLE reservation_items;
DROP TABLE reservations;
DROP TABLE inventory;
DROP TABLE products;
