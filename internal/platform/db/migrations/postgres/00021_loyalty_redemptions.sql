-- +goose Up
-- Loyalty II, part 2: redemptions, transfers and admin fault settings.

-- One row per redemption attempt. reference is the caller's idempotency key
-- (actor + Idempotency-Key); a failed attempt frees it for a retry.
CREATE TABLE loyalty_redemptions (
    id             TEXT   PRIMARY KEY,
    member_id      TEXT   NOT NULL REFERENCES loyalty_members (id),
    option_id      TEXT   NOT NULL,
    option_type    TEXT   NOT NULL,
    list_points    BIGINT NOT NULL,
    discount       BIGINT NOT NULL,
    cost           BIGINT NOT NULL CHECK (cost > 0),
    hold_id        TEXT   NOT NULL UNIQUE REFERENCES loyalty_holds (id),
    reference      TEXT,
    status         TEXT   NOT NULL CHECK (status IN ('pending', 'success', 'failed')),
    confirmation   TEXT   NOT NULL DEFAULT '',
    failure        TEXT   NOT NULL DEFAULT '',
    new_balance    BIGINT NOT NULL DEFAULT 0,
    transaction_id TEXT,
    trace_id       TEXT   NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX loyalty_redemptions_reference ON loyalty_redemptions (reference) WHERE reference IS NOT NULL AND status <> 'failed';
CREATE INDEX loyalty_redemptions_member ON loyalty_redemptions (member_id, created_at);

-- Outgoing transfers: to a partner (two-phase, through a hold) or to another
-- member (one ledger transaction). Member transfers count against the
-- sender's yearly limit by created_at.
CREATE TABLE loyalty_transfers (
    id             TEXT   PRIMARY KEY,
    kind           TEXT   NOT NULL CHECK (kind IN ('partner', 'member')),
    member_id      TEXT   NOT NULL REFERENCES loyalty_members (id),
    partner_id     TEXT,
    to_member_id   TEXT,
    points         BIGINT NOT NULL CHECK (points > 0),
    partner_units  BIGINT NOT NULL DEFAULT 0,
    hold_id        TEXT   UNIQUE REFERENCES loyalty_holds (id),
    reference      TEXT,
    status         TEXT   NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    confirmation   TEXT   NOT NULL DEFAULT '',
    new_balance    BIGINT NOT NULL DEFAULT 0,
    transaction_id TEXT,
    trace_id       TEXT   NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX loyalty_transfers_reference ON loyalty_transfers (reference) WHERE reference IS NOT NULL AND status <> 'failed';
CREATE INDEX loyalty_transfers_member ON loyalty_transfers (member_id, kind, created_at);

-- Fault settings an admin sets at run time for the built-in fulfilment
-- provider ("fulfillment") and partner simulator ("partner:<id>"). A row
-- overrides the program file's setting for every replica.
CREATE TABLE loyalty_faults (
    target     TEXT   PRIMARY KEY,
    fail       BIGINT NOT NULL DEFAULT 0 CHECK (fail IN (0, 1)),
    delay_ms   BIGINT NOT NULL DEFAULT 0 CHECK (delay_ms >= 0),
    actor      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0;

-- +goose Down
DROP INDEX loyalty_lots_expiring;
DROP TABLE loyalty_faults;
DROP TABLE loyalty_transfers;
DROP TABLE loyalty_redemptions;
