-- +goose Up
-- Performance II: fewer index entries per ledger write.
--
-- The column constraint UNIQUE (idempotency_key) indexed every transaction,
-- NULL keys too, and most ledger transactions (expiry, earning by activity)
-- have none. A partial unique index keeps the same rule for the keys that
-- exist; lookups by key (idempotency_key = $1) imply IS NOT NULL and use it.
-- No statement uses ON CONFLICT on this column; a duplicate key still fails
-- with a unique violation (23505).
ALTER TABLE loyalty_transactions DROP CONSTRAINT loyalty_transactions_idempotency_key_key;
CREATE UNIQUE INDEX loyalty_transactions_idempotency_key ON loyalty_transactions (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Only the lot-policy expiry count read this index; it now counts members by
-- the same EXISTS probe on loyalty_lots_member as the candidate query. With
-- remaining in no index, a lot update (redemption, expiry) can be a HOT
-- update, and a new lot writes two index entries instead of three.
DROP INDEX loyalty_lots_expiring;

-- No query reads transactions by member (statements and balances go through
-- the postings' account index, expiry and holds through lots), so this index
-- was one more entry written per ledger transaction for nothing.
DROP INDEX loyalty_transactions_member;

-- +goose Down
CREATE INDEX loyalty_transactions_member ON loyalty_transactions (member_id, created_at);
CREATE INDEX loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0;
DROP INDEX loyalty_transactions_idempotency_key;
ALTER TABLE loyalty_transactions ADD CONSTRAINT loyalty_transactions_idempotency_key_key UNIQUE (idempotency_key);
