-- +goose Up
-- Webhook subscriptions and their deliveries (issue 20). A subscription's
-- secret signs its deliveries (Standard Webhooks); state is active, paused
-- or disabled (by the delivery worker after consecutive failures). A delivery
-- is one event for one subscription: pending until sent, delivered, or dead
-- once its retries are spent; a replay adds a new delivery of the same event.
CREATE TABLE webhook_subscriptions (
	id TEXT PRIMARY KEY,
	url TEXT NOT NULL,
	event_types TEXT NOT NULL,
	secret TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	failures INTEGER NOT NULL DEFAULT 0,
	disabled_reason TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	deleted_at BIGINT
);

CREATE TABLE webhook_deliveries (
	id TEXT PRIMARY KEY,
	subscription_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	replay INTEGER NOT NULL DEFAULT 0,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL,
	claimed_until BIGINT NOT NULL DEFAULT 0,
	claim_token TEXT NOT NULL DEFAULT '',
	response_status INTEGER NOT NULL DEFAULT 0,
	latency_us BIGINT NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
