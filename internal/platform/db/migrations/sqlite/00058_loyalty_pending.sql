-- +goose Up
-- Pending points (issue 21): an earning whose points vest later posts them
-- from program:issuance to the member's pending account (pending:<member id>)
-- instead of the member's own, and records them here. The vest job moves
-- them to the member's account (a 'vest' transaction, which forms the lot);
-- a reversal while they pend moves them back to program:issuance. status is
-- pending, vested or cancelled; settled_transaction_id is the vest or the
-- cancelling reversal. The pending account of a member always sums to the
-- points of its pending rows (verify checks it). Times are Unix microseconds.
CREATE TABLE loyalty_pending (
    id                     TEXT   PRIMARY KEY,
    member_id              TEXT   NOT NULL REFERENCES loyalty_members (id),
    transaction_id         TEXT   NOT NULL UNIQUE REFERENCES loyalty_transactions (id),
    activity_type          TEXT   NOT NULL,
    points                 BIGINT NOT NULL CHECK (points > 0),
    status_points          BIGINT NOT NULL CHECK (status_points >= 0),
    vests_at               BIGINT NOT NULL,
    status                 TEXT   NOT NULL CHECK (status IN ('pending', 'vested', 'cancelled')),
    settled_transaction_id TEXT   REFERENCES loyalty_transactions (id),
    created_at             BIGINT NOT NULL,
    settled_at             BIGINT
);
CREATE INDEX loyalty_pending_due ON loyalty_pending (vests_at, member_id) WHERE status = 'pending';
CREATE INDEX loyalty_pending_member ON loyalty_pending (member_id, vests_at);

-- +goose Down
DROP TABLE loyalty_pending;
