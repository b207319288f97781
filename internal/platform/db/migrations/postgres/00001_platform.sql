-- +goose Up
-- Idempotency records: one row per (principal, key). A pending row is a claim
-- held by the request executing now; a done row holds the response to replay.
CREATE TABLE idempotency_keys (
    owner         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    status_code   INTEGER NOT NULL DEFAULT 0,
    content_type  TEXT    NOT NULL DEFAULT '',
    body          BYTEA,
    created_at    BIGINT  NOT NULL,
    claimed_until BIGINT  NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
