-- +goose NO TRANSACTION
-- +goose Up
-- Performance II: fewer index entries per ledger write.
--
-- The column constraint UNIQUE (idempotency_key) indexed every transaction,
-- NULL keys too, and most ledger transactions (expiry, earning by activity)
-- have none. A partial unique index keeps the same rule for the keys that
-- exist; lookups by key (idempotency_key = $1) imply IS NOT NULL and use it.
-- No statement uses ON CONFLICT on this column; a duplicate key still fails
-- with SQLITE_CONSTRAINT_UNIQUE.
--
-- SQLite cannot drop a column's UNIQUE constraint, so the table is rebuilt
-- (the documented procedure, as in 00020: foreign keys off, copy, drop,
-- rename, foreign keys on). Postings, lots and activities reference
-- loyalty_transactions by name, so their foreign keys point at the new table.
-- PRAGMA foreign_keys is ignored inside a transaction, hence NO TRANSACTION;
-- the copy itself runs in one explicit transaction.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE loyalty_transactions_new (
    id              TEXT   PRIMARY KEY,
    type            TEXT   NOT NULL,
    member_id       TEXT,
    idempotency_key TEXT,
    breakdown       TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    trace_id        TEXT   NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
INSERT INTO loyalty_transactions_new (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
    SELECT id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at FROM loyalty_transactions;
DROP TABLE loyalty_transactions;
ALTER TABLE loyalty_transactions_new RENAME TO loyalty_transactions;
-- loyalty_transactions_member (member_id, created_at) is not recreated: no
-- query reads transactions by member (statements and balances go through the
-- postings' account index, expiry and holds through lots), so it was one more
-- entry written per ledger transaction for nothing.
CREATE UNIQUE INDEX loyalty_transactions_idempotency_key ON loyalty_transactions (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Only the lot-policy expiry count read this index; it now counts members by
-- the same EXISTS probe on loyalty_lots_member as the candidate query. A new
-- lot writes two index entries instead of three, and a lot update touches no
-- index.
DROP INDEX loyalty_lots_expiring;
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE INDEX loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0;
CREATE TABLE loyalty_transactions_old (
    id              TEXT   PRIMARY KEY,
    type            TEXT   NOT NULL,
    member_id       TEXT,
    idempotency_key TEXT   UNIQUE,
    breakdown       TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    trace_id        TEXT   NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
INSERT INTO loyalty_transactions_old (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
    SELECT id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at FROM loyalty_transactions;
DROP TABLE loyalty_transactions;
ALTER TABLE loyalty_transactions_old RENAME TO loyalty_transactions;
CREATE INDEX loyalty_transactions_member ON loyalty_transactions (member_id, created_at);
COMMIT;
PRAGMA foreign_keys = ON;
