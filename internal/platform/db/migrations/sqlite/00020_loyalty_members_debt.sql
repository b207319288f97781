-- +goose NO TRANSACTION
-- +goose Up
-- Loyalty II, part 1: a member's balance may go negative (a reversal of
-- points already spent), and the status points of the previous status year
-- are kept for the year-end requalification job. SQLite cannot drop a CHECK
-- constraint, so the members table is rebuilt (the documented 12-step
-- procedure: foreign keys off, copy, drop, rename, check, foreign keys on).
-- PRAGMA foreign_keys is ignored inside a transaction, hence NO TRANSACTION;
-- the copy itself runs in one explicit transaction.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE loyalty_members_new (
    id                 TEXT    PRIMARY KEY,
    name               TEXT    NOT NULL,
    email              TEXT    NOT NULL,
    tier               TEXT    NOT NULL,
    -- balance is spendable and negative while the member owes points;
    -- held is reserved by pending holds.
    balance            BIGINT  NOT NULL DEFAULT 0,
    held               BIGINT  NOT NULL DEFAULT 0 CHECK (held >= 0),
    status_points      BIGINT  NOT NULL DEFAULT 0,
    status_year        INTEGER NOT NULL,
    prev_status_points BIGINT  NOT NULL DEFAULT 0,
    prev_status_year   INTEGER NOT NULL DEFAULT 0,
    requalified_year   INTEGER NOT NULL DEFAULT 0,
    last_activity_at   BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
INSERT INTO loyalty_members_new (id, name, email, tier, balance, held, status_points, status_year, last_activity_at, created_at, updated_at)
    SELECT id, name, email, tier, balance, held, status_points, status_year, last_activity_at, created_at, updated_at FROM loyalty_members;
DROP TABLE loyalty_members;
ALTER TABLE loyalty_members_new RENAME TO loyalty_members;
CREATE INDEX loyalty_members_activity ON loyalty_members (last_activity_at);
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE loyalty_members_old (
    id               TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    email            TEXT    NOT NULL,
    tier             TEXT    NOT NULL,
    balance          BIGINT  NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held             BIGINT  NOT NULL DEFAULT 0 CHECK (held >= 0),
    status_points    BIGINT  NOT NULL DEFAULT 0,
    status_year      INTEGER NOT NULL,
    last_activity_at BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
INSERT INTO loyalty_members_old (id, name, email, tier, balance, held, status_points, status_year, last_activity_at, created_at, updated_at)
    SELECT id, name, email, tier, MAX(balance, 0), held, status_points, status_year, last_activity_at, created_at, updated_at FROM loyalty_members;
DROP TABLE loyalty_members;
ALTER TABLE loyalty_members_old RENAME TO loyalty_members;
COMMIT;
PRAGMA foreign_keys = ON;
