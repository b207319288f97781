-- +goose Up
-- Expiry warnings (issues 20 and 21): one row per lot and expiry instant the
-- warning job has warned about, written in the same transaction as its
-- points.expiring event. The primary key is what makes the warning once only:
-- a second run, or another replica running at the same moment, inserts with
-- ON CONFLICT DO NOTHING and gets no row back, so writes no event. Under the
-- lot policy a lot's expires_at never changes (once per lot); under the
-- inactivity policy activity moves a member's expiry later, and a lot is
-- warned again only for the new instant. No foreign key: the row outlives
-- nothing it needs, and lots are never deleted. Times are Unix microseconds.
CREATE TABLE loyalty_lot_warnings (
	lot_id TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	member_id TEXT NOT NULL,
	points BIGINT NOT NULL,
	warned_at BIGINT NOT NULL,
	PRIMARY KEY (lot_id, expires_at)
);

-- +goose Down
DROP TABLE loyalty_lot_warnings;
