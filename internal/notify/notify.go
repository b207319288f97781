// Package notify delivers confirmations through a transactional outbox: a
// message is written in the same database transaction as the order, and a
// worker delivers due messages through a Sender with retries and exponential
// backoff. Rows are claimed with a lease, so replicas never send one twice;
// the delivery span links to the trace that queued the message. Recipient
// addresses never reach telemetry or logs.
package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Message is a message to queue.
type Message struct {
	Kind      string // e.g. "order_confirmation"
	Reference string // e.g. the order id
	To        string
	Subject   string
	Body      string // plain text
}

// Email is what a Sender sends. ID is stable across retries, so a Sender can
// make a repeated delivery a no-op.
type Email struct {
	ID      string
	To      string
	Subject string
	Text    string
	Date    time.Time
}

// Sender delivers an email.
type Sender interface {
	Send(ctx context.Context, e Email) error
}

var traceContext = propagation.TraceContext{}

// Enqueue writes msg to the outbox inside tx (the caller's business
// transaction) with the current trace context, and returns its id.
func Enqueue(ctx context.Context, tx *db.Tx, now time.Time, msg Message) (string, error) {
	if msg.To == "" {
		return "", errors.New("notify: message without recipient")
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	id := "msg_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, kind, reference, recipient, subject, body, traceparent, state, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)`,
		id, msg.Kind, msg.Reference, msg.To, msg.Subject, msg.Body, carrier.Get("traceparent"), db.Micros(now))
	if err != nil {
		return "", fmt.Errorf("notify: enqueue: %w", err)
	}
	return id, nil
}

// WorkerConfig holds the Worker's dependencies and tuning.
type WorkerConfig struct {
	DB             *db.DB
	Sender         Sender
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Logger         *slog.Logger
	// MaxAttempts before a message is parked as dead; default 10.
	MaxAttempts int
	// BaseBackoff is the wait after the first failure, doubled per attempt up to
	// MaxBackoff; defaults 5s and 1h.
	BaseBackoff, MaxBackoff time.Duration
	// Lease is how long a claimed message is protected from other replicas; default 2m.
	Lease time.Duration
	// Batch is the most messages claimed per DeliverDue; default 50.
	Batch int
}

// Worker delivers outbox messages.
type Worker struct {
	cfg       WorkerConfig
	tracer    trace.Tracer
	delivered metric.Int64Counter
	log       *slog.Logger
}

// NewWorker returns a Worker.
func NewWorker(cfg WorkerConfig) *Worker {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider, Meter: &cfg.MeterProvider})
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 50
	}
	meter := cfg.MeterProvider.Meter("github.com/godwit-dev/godwit/internal/notify")
	delivered, _ := meter.Int64Counter("notify.deliveries", metric.WithDescription("Outbox delivery attempts by result (sent, retry, dead)"))
	return &Worker{cfg: cfg, log: cfg.Logger, delivered: delivered,
		tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/notify")}
}

type claimed struct {
	id, kind, reference, to, subject, body, traceparent string
	attempts                                            int
	created                                             int64
}

// claim takes up to Batch due messages for this worker with a lease.
func (w *Worker) claim(ctx context.Context, token string) ([]claimed, error) {
	var out []claimed
	err := w.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		out = out[:0]
		now := db.Micros(w.cfg.Now())
		rows, err := tx.QueryContext(ctx, `SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 AND claimed_until <= $1
			ORDER BY next_attempt_at LIMIT $2`+tx.Dialect().SkipLocked(), now, w.cfg.Batch)
		if err != nil {
			return fmt.Errorf("notify: claim: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("notify: claim: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("notify: claim: %w", err)
		}
		for _, id := range ids {
			var c claimed
			err := tx.QueryRowContext(ctx, `UPDATE outbox SET claimed_until = $2, claim_token = $3
				WHERE id = $1 AND state = 'pending' AND claimed_until <= $4
				RETURNING id, kind, reference, recipient, subject, body, traceparent, attempts, created_at`,
				id, db.Micros(w.cfg.Now().Add(w.cfg.Lease)), token, now).
				Scan(&c.id, &c.kind, &c.reference, &c.to, &c.subject, &c.body, &c.traceparent, &c.attempts, &c.created)
			if errors.Is(err, sql.ErrNoRows) {
				continue // taken by another worker in the meantime
			}
			if err != nil {
				return fmt.Errorf("notify: claim %s: %w", id, err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// DeliverDue claims the messages that are due and delivers them, and reports
// how many were sent.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	token := uuid.NewString()
	msgs, err := w.claim(ctx, token)
	if err != nil {
		return 0, err
	}
	sent := 0
	var errsOut []error
	for _, m := range msgs {
		ok, err := w.deliver(ctx, token, m)
		if err != nil {
			errsOut = append(errsOut, err)
		}
		if ok {
			sent++
		}
	}
	return sent, errors.Join(errsOut...)
}

func (w *Worker) deliver(ctx context.Context, token string, m claimed) (bool, error) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("notify.message_id", m.id),
			attribute.String("notify.kind", m.kind),
			attribute.Int("notify.attempt", m.attempts+1),
			attribute.String("order.id", m.reference),
		),
	}
	if m.traceparent != "" {
		linked := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": m.traceparent})
		if sc := trace.SpanContextFromContext(linked); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("link.kind", "queued_by")}}))
		}
	}
	// A new trace: delivery happens later, on any replica; the link leads back to the checkout.
	ctx, span := w.tracer.Start(ctx, "notify.deliver", append(opts, trace.WithNewRoot())...)
	defer span.End()

	sendErr := w.cfg.Sender.Send(ctx, Email{ID: m.id, To: m.to, Subject: m.subject, Text: m.body, Date: db.FromMicros(m.created)})
	now := w.cfg.Now()
	store := context.WithoutCancel(ctx)
	if sendErr == nil {
		err := w.cfg.DB.InTx(store, func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'sent', sent_at = $3, attempts = attempts + 1, claimed_until = 0, last_error = ''
				WHERE id = $1 AND claim_token = $2`, m.id, token, db.Micros(now))
			return err
		})
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "mark sent failed")
			return true, fmt.Errorf("notify: mark %s sent: %w", m.id, err)
		}
		span.SetAttributes(attribute.String("notify.result", "sent"))
		w.delivered.Add(ctx, 1, metric.WithAttributes(attribute.String("notify.result", "sent")))
		return true, nil
	}
	attempts := m.attempts + 1
	state, result := "pending", "retry"
	if attempts >= w.cfg.MaxAttempts {
		state, result = "dead", "dead"
	}
	backoff := w.cfg.BaseBackoff << min(attempts-1, 30)
	if backoff <= 0 || backoff > w.cfg.MaxBackoff {
		backoff = w.cfg.MaxBackoff
	}
	// The sender's error text may echo the address; store and log only its type.
	reason := fmt.Sprintf("%T", sendErr)
	err := w.cfg.DB.InTx(store, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET state = $3, attempts = $4, next_attempt_at = $5, claimed_until = 0, last_error = $6
			WHERE id = $1 AND claim_token = $2`, m.id, token, state, attempts, db.Micros(now.Add(backoff)), reason)
		return err
	})
	span.SetAttributes(attribute.String("notify.result", result))
	span.SetStatus(codes.Error, "send failed")
	w.delivered.Add(ctx, 1, metric.WithAttributes(attribute.String("notify.result", result)))
	w.log.WarnContext(ctx, "confirmation delivery failed", "message_id", m.id, "attempt", attempts, "result", result, "error_type", reason)
	if err != nil {
		return false, fmt.Errorf("notify: reschedule %s: %w", m.id, err)
	}
	return false, nil
}

// DeliveryPass runs DeliverDue once: one pass of the outbox delivery job.
// Replicas may all run it: messages are claimed with a lease before they
// are sent.
func (w *Worker) DeliveryPass(ctx context.Context) error {
	_, err := w.DeliverDue(ctx)
	return err
}
