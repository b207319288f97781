-- +goose Up
-- Loyalty I: members, the double-entry points ledger, lots, activities,
-- promotions and holds. Accounts are text ids ("member:<id>",
-- "program:issuance", "partner:<id>", "sink:redemption", "sink:expiry"); only
-- member accounts have a cached balance, on loyalty_members. The issuance
-- account deliberately has no balance row: one hot row would serialise all
-- earning, so its balance is the sum of its postings.

CREATE TABLE loyalty_members (
    id               TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    email            TEXT    NOT NULL,
    tier             TEXT    NOT NULL,
    -- balance is spendable; held is reserved by pending holds. The member
    -- account's postings sum to balance + held.
    balance          BIGINT  NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held             BIGINT  NOT NULL DEFAULT 0 CHECK (held >= 0),
    status_points    BIGINT  NOT NULL DEFAULT 0,
    status_year      INTEGER NOT NULL,
    last_activity_at BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

CREATE TABLE loyalty_transactions (
    id              TEXT   PRIMARY KEY,
    type            TEXT   NOT NULL,
    member_id       TEXT,
    idempotency_key TEXT   UNIQUE,
    breakdown       TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    trace_id        TEXT   NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
CREATE INDEX loyalty_transactions_member ON loyalty_transactions (member_id, created_at);

-- Append-only. id orders a member account's postings (they are written under
-- the member's row lock), so balance_after chains along it.
CREATE TABLE loyalty_postings (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id TEXT    NOT NULL REFERENCES loyalty_transactions (id),
    account        TEXT    NOT NULL,
    amount         BIGINT  NOT NULL,
    balance_after  BIGINT,
    created_at     BIGINT  NOT NULL
);
CREATE INDEX loyalty_postings_account ON loyalty_postings (account, id);
CREATE INDEX loyalty_postings_transaction ON loyalty_postings (transaction_id);

CREATE TABLE loyalty_lots (
    id             TEXT   PRIMARY KEY,
    member_id      TEXT   NOT NULL REFERENCES loyalty_members (id),
    transaction_id TEXT   NOT NULL REFERENCES loyalty_transactions (id),
    points         BIGINT NOT NULL CHECK (points > 0),
    remaining      BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    earned_at      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX loyalty_lots_member ON loyalty_lots (member_id, expires_at);

-- One row per activity source and external id: a repeat returns result.
CREATE TABLE loyalty_activities (
    source         TEXT   NOT NULL,
    external_id    TEXT   NOT NULL,
    member_id      TEXT   NOT NULL REFERENCES loyalty_members (id),
    type           TEXT   NOT NULL,
    occurred_at    BIGINT NOT NULL,
    request_hash   TEXT   NOT NULL,
    transaction_id TEXT   NOT NULL REFERENCES loyalty_transactions (id),
    result         TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (source, external_id)
);

CREATE TABLE loyalty_promotions (
    id             TEXT   PRIMARY KEY,
    name           TEXT   NOT NULL,
    start_at       BIGINT NOT NULL,
    end_at         BIGINT NOT NULL,
    activity_types TEXT   NOT NULL,
    tiers          TEXT   NOT NULL DEFAULT '',
    multiplier_bp  BIGINT NOT NULL DEFAULT 0,
    fixed_bonus    BIGINT NOT NULL DEFAULT 0,
    cap_points     BIGINT NOT NULL DEFAULT 0,
    cap_times      BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE INDEX loyalty_promotions_window ON loyalty_promotions (start_at, end_at);

-- What each member has received from each promotion, for caps. Written only
-- under the member's row lock.
CREATE TABLE loyalty_promotion_awards (
    promotion_id TEXT   NOT NULL,
    member_id    TEXT   NOT NULL,
    points       BIGINT NOT NULL,
    times        BIGINT NOT NULL,
    PRIMARY KEY (promotion_id, member_id)
);

CREATE TABLE loyalty_holds (
    id             TEXT   PRIMARY KEY,
    member_id      TEXT   NOT NULL REFERENCES loyalty_members (id),
    points         BIGINT NOT NULL CHECK (points > 0),
    reference      TEXT   NOT NULL UNIQUE,
    status         TEXT   NOT NULL CHECK (status IN ('pending', 'captured', 'voided')),
    transaction_id TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX loyalty_holds_pending ON loyalty_holds (status, expires_at);
CREATE INDEX loyalty_holds_member ON loyalty_holds (member_id);

-- +goose Down
DROP TABLE loyalty_holds;
DROP TABLE loyalty_promotion_awards;
DROP TABLE loyalty_promotions;
DROP TABLE loyalty_activities;
DROP TABLE loyalty_lots;
DROP TABLE loyalty_postings;
DROP TABLE loyalty_transactions;
DROP TABLE loyalty_members;
