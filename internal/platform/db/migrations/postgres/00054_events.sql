-- +goose Up
-- The event outbox (issue 20): one row per business fact, written in the same
-- transaction as the change it reports, as a CloudEvents 1.0 event. Delivery
-- happens after the commit: dispatched_at is set when the row has been fanned
-- out to the webhook subscriptions, published_at when it is on the NATS
-- stream (0 = not yet). Times are Unix microseconds.
CREATE TABLE events (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	source TEXT NOT NULL,
	subject TEXT NOT NULL,
	time BIGINT NOT NULL,
	data TEXT NOT NULL,
	traceparent TEXT NOT NULL DEFAULT '',
	tracestate TEXT NOT NULL DEFAULT '',
	dispatched_at BIGINT NOT NULL DEFAULT 0,
	published_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_time ON events (time, id);
CREATE INDEX events_undispatched ON events (time) WHERE dispatched_at = 0;
CREATE INDEX events_unpublished ON events (time) WHERE published_at = 0;

-- +goose Down
DROP TABLE events;
