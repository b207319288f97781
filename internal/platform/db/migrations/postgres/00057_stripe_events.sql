-- +goose Up
-- Stripe webhook events received on POST /v1/webhooks/stripe (issue 19),
-- one row per Stripe event id so a redelivered event is recognised. Only
-- the fields processing needs are kept, never the payload itself (a charge
-- carries the cardholder's billing details). object_id is the event's object
-- (pi_, ch_ or dp_ id); charge_id is the payment intent Godwit charged (the
-- charge id on an order); object_status is the object's status as the event
-- gave it (a dispute's won/lost); amount_refunded is a charge's total refunded.
-- state: pending (to process, or to retry until next_attempt_at), processed,
-- ignored (not Godwit's, or its checkout never appeared). claim_token and
-- claimed_until let one request or replica process a row at a time.
CREATE TABLE stripe_events (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	object_id TEXT NOT NULL DEFAULT '',
	charge_id TEXT NOT NULL DEFAULT '',
	godwit BOOLEAN NOT NULL DEFAULT FALSE,
	currency TEXT NOT NULL DEFAULT '',
	amount BIGINT NOT NULL DEFAULT 0,
	amount_refunded BIGINT NOT NULL DEFAULT 0,
	object_status TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL CHECK (state IN ('pending', 'processed', 'ignored')),
	outcome TEXT NOT NULL DEFAULT '',
	attempts INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	event_created BIGINT NOT NULL DEFAULT 0,
	received_at BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	processed_at BIGINT NOT NULL DEFAULT 0,
	claim_token TEXT NOT NULL DEFAULT '',
	claimed_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX stripe_events_due ON stripe_events (next_attempt_at) WHERE state = 'pending';

-- +goose Down
DROP TABLE stripe_events;
