-- +goose Up
-- Revoked bearer tokens, by token id (jti). Every replica checks this table on
-- each authenticated request, so a revocation takes effect at once everywhere.
CREATE TABLE revoked_tokens (
    token_id   TEXT   PRIMARY KEY,
    subject    TEXT   NOT NULL,
    revoked_by TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE revoked_tokens;
