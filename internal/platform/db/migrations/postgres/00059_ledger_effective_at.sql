-- +goose Up
-- Loyalty III (issue 21): balances and statements as of a date.
--
-- A backdated adjustment takes effect at effective_at, earlier than when it
-- was booked (created_at). The column is NULL for every other transaction,
-- whose effective time is its created_at: as-of reads take
-- COALESCE(effective_at, created_at). A nullable column without a default
-- rewrites nothing on either engine. No index is added: as-of balances and
-- statements read one member's postings through loyalty_postings_account
-- (account, id) and join their transactions by primary key, as the
-- statement does, and the hot write path keeps its index entries.
ALTER TABLE loyalty_transactions ADD COLUMN effective_at BIGINT;

-- +goose Down
ALTER TABLE loyalty_transactions DROP COLUMN effective_at;
