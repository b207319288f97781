-- +goose Up
-- Members merge and personal-data erasure (issue 21). A merged member keeps
-- its row (the ledger's postings and lots name it) with merged_into pointing
-- at the member that took its points; an erased member keeps its row as a
-- stub with name and email emptied and erased_at set. The audit table records
-- who merged or erased whom, when, and what moved; it never holds personal
-- data.
ALTER TABLE loyalty_members ADD COLUMN merged_into TEXT NOT NULL DEFAULT '';
ALTER TABLE loyalty_members ADD COLUMN merged_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE loyalty_members ADD COLUMN erased_at BIGINT NOT NULL DEFAULT 0;

CREATE TABLE loyalty_member_audit (
    id         TEXT   PRIMARY KEY,
    member_id  TEXT   NOT NULL,
    action     TEXT   NOT NULL CHECK (action IN ('merge', 'erase')),
    actor      TEXT   NOT NULL,
    trace_id   TEXT   NOT NULL DEFAULT '',
    details    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX loyalty_member_audit_member ON loyalty_member_audit (member_id, created_at);

-- +goose Down
DROP TABLE loyalty_member_audit;
ALTER TABLE loyalty_members DROP COLUMN erased_at;
ALTER TABLE loyalty_members DROP COLUMN merged_at;
ALTER TABLE loyalty_members DROP COLUMN merged_into;
