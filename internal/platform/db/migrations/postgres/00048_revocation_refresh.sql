-- +goose Up
-- Replicas keep the revoked set in memory and refresh it: a poll reads rows
-- revoked since the last one seen (this index), and on PostgreSQL every new
-- revocation also wakes the listeners at once (LISTEN godwit_revocations), from
-- whatever process or tool inserted it.
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);

-- +goose StatementBegin
CREATE FUNCTION godwit_notify_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('godwit_revocations', NEW.token_id);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER revoked_tokens_notify AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION godwit_notify_revocation();

-- +goose Down
DROP TRIGGER revoked_tokens_notify ON revoked_tokens;
DROP FUNCTION godwit_notify_revocation();
DROP INDEX revoked_tokens_revoked_at;
