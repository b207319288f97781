-- +goose Up
-- Loyalty II, part 1: a member's balance may go negative (a reversal of
-- points already spent), and the status points of the previous status year
-- are kept for the year-end requalification job.
ALTER TABLE loyalty_members DROP CONSTRAINT loyalty_members_balance_check;
ALTER TABLE loyalty_members ADD COLUMN prev_status_points BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE loyalty_members ADD COLUMN prev_status_year   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE loyalty_members ADD COLUMN requalified_year   INTEGER NOT NULL DEFAULT 0;
CREATE INDEX loyalty_members_activity ON loyalty_members (last_activity_at);

-- +goose Down
DROP INDEX loyalty_members_activity;
ALTER TABLE loyalty_members DROP COLUMN requalified_year;
ALTER TABLE loyalty_members DROP COLUMN prev_status_year;
ALTER TABLE loyalty_members DROP COLUMN prev_status_points;
UPDATE loyalty_members SET balance = 0 WHERE balance < 0;
ALTER TABLE loyalty_members ADD CONSTRAINT loyalty_members_balance_check CHECK (balance >= 0);
