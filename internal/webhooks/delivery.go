package webhooks

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"      // attempts spent: dead-lettered, replayable
	DeliveryCancelled = "cancelled" // its subscription was deleted
)

// Delivery is one event's delivery to one subscription: the delivery log.
type Delivery struct {
	ID             string    `json:"id"`
	SubscriptionID string    `json:"subscription_id"`
	EventID        string    `json:"event_id"`
	EventType      string    `json:"event_type"`
	Replay         bool      `json:"replay"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	ResponseStatus int       `json:"response_status"` // of the last attempt; 0: no response
	LatencyMS      float64   `json:"latency_ms"`      // of the last attempt
	LastError      string    `json:"last_error,omitempty"`
	NextAttemptAt  time.Time `json:"next_attempt_at"`
	CreatedAt      time.Time `json:"created_at"`
	FinishedAt     time.Time `json:"finished_at,omitzero"`
}

// FanoutPass turns undispatched events into deliveries, one per active or
// paused subscription whose event types include the event's (a paused
// subscription's deliveries wait for it to resume), and marks the events
// dispatched, each batch in one transaction. Replicas may run it together: events
// are claimed FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite has one writer).
//
// A pass goes on with the next batch while a batch was full (up to
// drainRounds batches), so a backlog drains at the rate the database allows
// rather than one batch per --webhook-interval, which capped delivery at
// Batch events a second under load (issue 20's loadgen run).
func (s *Service) FanoutPass(ctx context.Context) error {
	for range drainRounds {
		n, _, err := s.fanout(ctx)
		if err != nil || n < s.cfg.Batch || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// drainRounds bounds the batches one pass takes, so a pass ends (and is
// counted and timed) even under a backlog that never empties.
const drainRounds = 100

// Fanout is one batch of FanoutPass, reporting how many deliveries it
// created.
func (s *Service) Fanout(ctx context.Context) (int, error) {
	_, created, err := s.fanout(ctx)
	return created, err
}

// fanout fans out one batch and returns how many events it took and how
// many deliveries it created.
func (s *Service) fanout(ctx context.Context) (taken, created int, err error) {
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		created, taken = 0, 0
		rows, err := tx.QueryContext(ctx, `SELECT id, type FROM events WHERE dispatched_at = 0 ORDER BY time, id LIMIT $1`+tx.Dialect().SkipLocked(), s.cfg.Batch)
		if err != nil {
			return err
		}
		type ev struct{ id, typ string }
		var evs []ev
		for rows.Next() {
			var e ev
			if err := rows.Scan(&e.id, &e.typ); err != nil {
				rows.Close()
				return err
			}
			evs = append(evs, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(evs) == 0 {
			return err
		}
		taken = len(evs)
		subs, err := subscribers(ctx, tx)
		if err != nil {
			return err
		}
		now := db.Micros(s.now())
		for _, e := range evs {
			for _, sub := range subs {
				if !slices.Contains(sub.EventTypes, e.typ) {
					continue
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, state, next_attempt_at, created_at)
					VALUES ($1, $2, $3, $4, 'pending', $5, $5)`, newID("whd_"), sub.ID, e.id, e.typ, now); err != nil {
					return err
				}
				created++
			}
			if _, err := tx.ExecContext(ctx, `UPDATE events SET dispatched_at = $2 WHERE id = $1`, e.id, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("webhooks: fan out: %w", err)
	}
	return taken, created, nil
}

// subscribers are the subscriptions that take new deliveries.
func subscribers(ctx context.Context, tx *db.Tx) ([]Subscription, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+subColumns+` FROM webhook_subscriptions WHERE deleted_at IS NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		sub, err := scanSub(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}

// claimed is a delivery taken by a pass, with what sending it needs.
type claimed struct {
	id, subID, url, secret string
	attempts               int
	event                  events.Event
}

// claim takes up to Batch due deliveries of active subscriptions with a
// lease: a replica that dies mid-send leaves them to another after Lease.
func (s *Service) claim(ctx context.Context, token string) ([]claimed, error) {
	var out []claimed
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		out = out[:0]
		now := db.Micros(s.now())
		// Due first; among equally due, in the order of the events.
		rows, err := tx.QueryContext(ctx, `SELECT d.id FROM webhook_deliveries d
			JOIN webhook_subscriptions s ON s.id = d.subscription_id
			JOIN events e ON e.id = d.event_id
			WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.claimed_until <= $1 AND s.state = 'active' AND s.deleted_at IS NULL
			ORDER BY d.next_attempt_at, e.time, e.id, d.id LIMIT $2`+tx.Dialect().SkipLockedOf("d"), now, s.cfg.Batch)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		until := db.Micros(s.now().Add(s.cfg.Lease))
		for _, id := range ids {
			var (
				c   claimed
				ev  string
				raw events.Event
			)
			err := tx.QueryRowContext(ctx, `UPDATE webhook_deliveries SET claimed_until = $2, claim_token = $3
				WHERE id = $1 AND state = 'pending' AND claimed_until <= $4
				RETURNING subscription_id, event_id, attempts`, id, until, token, now).Scan(&c.subID, &ev, &c.attempts)
			if errors.Is(err, sql.ErrNoRows) {
				continue // another replica took it
			}
			if err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx, `SELECT url, secret FROM webhook_subscriptions WHERE id = $1`, c.subID).Scan(&c.url, &c.secret); err != nil {
				return err
			}
			raw, err = events.Get(ctx, tx, ev)
			if err != nil {
				return err
			}
			c.id, c.event = id, raw
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// DeliveryPass sends the deliveries that are due: one pass of the delivery job.
// Like FanoutPass, it goes on while it claimed a full batch.
func (s *Service) DeliveryPass(ctx context.Context) error {
	for range drainRounds {
		claimed, _, err := s.deliverDue(ctx)
		if err != nil || claimed < s.cfg.Batch || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// DeliverDue claims due deliveries and sends them, each subscription's in
// the order they were due (one at a time), Parallel subscriptions at once;
// it records each outcome and returns how many were delivered.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	_, delivered, err := s.deliverDue(ctx)
	return delivered, err
}

// deliverDue is DeliverDue, also returning how many deliveries it claimed.
func (s *Service) deliverDue(ctx context.Context) (claimedN, deliveredN int, err error) {
	token := newID("")
	batch, err := s.claim(ctx, token)
	if err != nil {
		return 0, 0, fmt.Errorf("webhooks: claim: %w", err)
	}
	var (
		order []string
		bySub = map[string][]claimed{}
	)
	for _, c := range batch {
		if _, ok := bySub[c.subID]; !ok {
			order = append(order, c.subID)
		}
		bySub[c.subID] = append(bySub[c.subID], c)
	}
	var (
		mu        sync.Mutex
		delivered int
		failures  []error
		wg        sync.WaitGroup
		sem       = make(chan struct{}, s.cfg.Parallel)
	)
	for _, sub := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, c := range bySub[sub] {
				ok, err := s.deliver(ctx, token, c)
				mu.Lock()
				if ok {
					delivered++
				}
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(batch), delivered, errors.Join(failures...)
}

// Sign returns the Standard Webhooks signature header of body sent as
// message id at ts with secret ("whsec_…").
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return "", err
	}
	return wh.Sign(id, ts, body)
}

// deliver sends one delivery under a span that continues the trace of the
// request that caused the event (its parent is the event's traceparent) and
// records the outcome.
func (s *Service) deliver(ctx context.Context, token string, c claimed) (bool, error) {
	attempt := c.attempts + 1
	ctx, span := s.tracer.Start(c.event.TraceContext(ctx), "webhook.deliver", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("webhook.subscription_id", c.subID),
			attribute.String("webhook.delivery_id", c.id),
			attribute.String("cloudevents.event_id", c.event.ID),
			attribute.String("cloudevents.event_type", c.event.Type),
			attribute.Int("webhook.attempt", attempt),
		))
	defer span.End()

	status, latency, sendErr := s.send(ctx, c)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	s.latency.Record(ctx, latency.Seconds())
	now := s.now()
	result := "delivered"
	var disabled bool
	err := s.db.InTx(context.WithoutCancel(ctx), func(ctx context.Context, tx *db.Tx) error {
		disabled = false
		if sendErr == nil {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'delivered', attempts = $3, response_status = $4, latency_us = $5,
				last_error = '', claimed_until = 0, finished_at = $6 WHERE id = $1 AND claim_token = $2`,
				c.id, token, attempt, status, latency.Microseconds(), db.Micros(now)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE webhook_subscriptions SET failures = 0 WHERE id = $1 AND failures <> 0`, c.subID)
			return err
		}
		state, next, finished := DeliveryPending, now.Add(s.backoff(attempt)), int64(0)
		result = "retry"
		if attempt >= s.cfg.MaxAttempts {
			state, result, finished = DeliveryDead, "dead", db.Micros(now)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = $3, attempts = $4, response_status = $5, latency_us = $6,
			last_error = $7, next_attempt_at = $8, claimed_until = 0, finished_at = $9 WHERE id = $1 AND claim_token = $2`,
			c.id, token, state, attempt, status, latency.Microseconds(), truncate(sendErr.Error(), 300), db.Micros(next), finished); err != nil {
			return err
		}
		var failures int
		if err := tx.QueryRowContext(ctx, `UPDATE webhook_subscriptions SET failures = failures + 1 WHERE id = $1 RETURNING failures`, c.subID).Scan(&failures); err != nil {
			return err
		}
		if failures < s.cfg.DisableAfter {
			return nil
		}
		reason := fmt.Sprintf("%d delivery attempts failed in a row", failures)
		res, err := tx.ExecContext(ctx, `UPDATE webhook_subscriptions SET state = 'disabled', disabled_reason = $2, updated_at = $3
			WHERE id = $1 AND state = 'active'`, c.subID, reason, db.Micros(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		disabled = true
		e, err := events.New(ctx, events.WebhookDisabled, events.SourceWebhooks, c.subID, now,
			events.WebhookDisabledData{SubscriptionID: c.subID, ConsecutiveFailures: failures, Reason: reason})
		if err != nil {
			return err
		}
		return s.rec.Record(ctx, tx, e)
	})
	span.SetAttributes(attribute.String("webhook.result", result))
	s.attempts.Add(ctx, 1, metric.WithAttributes(attribute.String("webhook.result", result)))
	if sendErr != nil {
		span.SetStatus(codes.Error, "delivery failed")
		s.log.WarnContext(ctx, "webhook delivery failed", "subscription_id", c.subID, "delivery_id", c.id, "event_id", c.event.ID,
			"attempt", attempt, "result", result, "status", status, "error", truncate(sendErr.Error(), 300))
	}
	if disabled {
		span.AddEvent("webhook.subscription_disabled")
		s.log.WarnContext(ctx, "webhook subscription disabled", "subscription_id", c.subID)
	}
	if err != nil {
		return false, fmt.Errorf("webhooks: record delivery %s: %w", c.id, err)
	}
	return sendErr == nil, nil
}

// backoff is the wait after failed attempt n: BaseBackoff doubled per
// attempt up to MaxBackoff, spread ±20 %.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.BaseBackoff << min(n-1, 30)
	if d <= 0 || d > s.cfg.MaxBackoff {
		d = s.cfg.MaxBackoff
	}
	return time.Duration(float64(d) * (0.8 + 0.4*s.cfg.Rand()))
}

// send POSTs the event, signed, and says how it went: a 2xx is delivered;
// anything else, a timeout or a refused address is a failure.
func (s *Service) send(ctx context.Context, c claimed) (status int, latency time.Duration, err error) {
	body, err := json.Marshal(c.event)
	if err != nil {
		return 0, 0, err
	}
	ts := s.now()
	sig, err := Sign(c.secret, c.event.ID, ts, body)
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "Godwit-Webhooks/1")
	req.Header.Set("webhook-id", c.event.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	// The receiver continues the trace: the delivery span is its parent.
	traceContextOf(ctx, req.Header)
	start := time.Now()
	resp, err := s.client.Do(req)
	latency = time.Since(start)
	if err != nil {
		return 0, latency, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, latency, fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, latency, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Deliveries returns a subscription's delivery log, newest first.
func (s *Service) Deliveries(ctx context.Context, subID string, state string, limit int) ([]Delivery, error) {
	if _, err := s.Get(ctx, subID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	q := `SELECT id, subscription_id, event_id, event_type, replay, state, attempts, response_status, latency_us, last_error, next_attempt_at, created_at, finished_at
		FROM webhook_deliveries WHERE subscription_id = $1`
	args := []any{subID}
	if state != "" {
		q += ` AND state = $3`
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $2`
	args = append(args, limit)
	if state != "" {
		args = append(args, state)
	}
	rows, err := s.db.Read().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("webhooks: deliveries: %w", err)
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var (
			d                     Delivery
			replay                int
			lat, next, c, finised int64
		)
		if err := rows.Scan(&d.ID, &d.SubscriptionID, &d.EventID, &d.EventType, &replay, &d.State, &d.Attempts, &d.ResponseStatus,
			&lat, &d.LastError, &next, &c, &finised); err != nil {
			return nil, fmt.Errorf("webhooks: deliveries: %w", err)
		}
		d.Replay, d.LatencyMS = replay != 0, float64(lat)/1000
		d.NextAttemptAt, d.CreatedAt = db.FromMicros(next), db.FromMicros(c)
		if finised != 0 {
			d.FinishedAt = db.FromMicros(finised)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ReplayRequest selects what Replay sends again: one event, or the events
// of the subscription's types in [From, To).
type ReplayRequest struct {
	EventID  string
	From, To time.Time
}

// maxReplay bounds one replay request.
const maxReplay = 1000

// Replay queues a new delivery, to subscription subID, of each event the
// request selects (the subscription's types only, for a range) and returns
// how many. A replayed event keeps its id: receivers de-duplicate by it.
func (s *Service) Replay(ctx context.Context, subID string, r ReplayRequest) (int, error) {
	sub, err := s.Get(ctx, subID)
	if err != nil {
		return 0, err
	}
	var evs []events.Event
	switch {
	case r.EventID != "" && (!r.From.IsZero() || !r.To.IsZero()):
		return 0, errs.Coded(errs.Unprocessable, CodeInvalidReplay, "give event_id or a time range, not both")
	case r.EventID != "":
		e, err := events.Get(ctx, s.db.Read(), r.EventID)
		if errors.Is(err, events.ErrNotFound) {
			return 0, errs.Coded(errs.NotFound, CodeEventNotFound, "no event %q", r.EventID).With("event_id", r.EventID)
		}
		if err != nil {
			return 0, err
		}
		evs = []events.Event{e}
	case r.From.IsZero() || r.To.IsZero() || !r.From.Before(r.To):
		return 0, errs.Coded(errs.Unprocessable, CodeInvalidReplay, "a replay needs event_id, or from and to with from before to")
	default:
		evs, err = events.List(ctx, s.db.Read(), events.Filter{Types: sub.EventTypes, From: r.From, To: r.To, Limit: maxReplay + 1})
		if err != nil {
			return 0, err
		}
		if len(evs) > maxReplay {
			return 0, errs.Coded(errs.Unprocessable, CodeInvalidReplay, "the range holds more than %d events; replay a shorter one", maxReplay)
		}
	}
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := db.Micros(s.now())
		for _, e := range evs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, replay, state, next_attempt_at, created_at)
				VALUES ($1, $2, $3, $4, 1, 'pending', $5, $5)`, newID("whd_"), subID, e.ID, e.Type, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("webhooks: replay: %w", err)
	}
	return len(evs), nil
}
