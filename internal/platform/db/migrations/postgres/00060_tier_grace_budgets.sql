-- +goose Up
-- Campaign budgets and tier grace (issue 21).
--
-- A promotion's budget_points caps the bonus points it gives across all
-- members (0 = no budget); budget_spent is what it has given so far, raised
-- in the earning's transaction under the promotion's row lock, so it never
-- passes the budget.
ALTER TABLE loyalty_promotions ADD COLUMN budget_points BIGINT NOT NULL DEFAULT 0;
ALTER TABLE loyalty_promotions ADD COLUMN budget_spent BIGINT NOT NULL DEFAULT 0;

-- A member whose requalification would drop them but who keeps their tier
-- for the program's grace period: the tier they keep (from_tier), the tier
-- they drop to (to_tier) at downgrade_at unless they requalify first, and
-- the status year whose requalification decided it. One row per member;
-- the requalification job removes it when the grace ends.
CREATE TABLE loyalty_tier_grace (
	member_id TEXT PRIMARY KEY,
	from_tier TEXT NOT NULL,
	to_tier TEXT NOT NULL,
	downgrade_at BIGINT NOT NULL,
	status_year INTEGER NOT NULL
);
CREATE INDEX loyalty_tier_grace_due ON loyalty_tier_grace (downgrade_at);

-- +goose Down
DROP TABLE loyalty_tier_grace;
ALTER TABLE loyalty_promotions DROP COLUMN budget_spent;
ALTER TABLE loyalty_promotions DROP COLUMN budget_points;
