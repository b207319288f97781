-- +goose Up
-- Replicas keep the revoked set in memory and refresh it with a short poll that
-- reads rows revoked since the last one seen.
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);

-- +goose Down
DROP INDEX revoked_tokens_revoked_at;
