// Package natsbus publishes the event catalogue (internal/events) to NATS
// JetStream and tails it. Each event is published to the subject
// godwit.<type> on the stream GODWIT_EVENTS (created if absent) with
// Nats-Msg-Id set to the event id, so JetStream drops a duplicate publish
// within the stream's duplicate window (a retry after a lost ack, or two
// replicas publishing the same row); the trace context travels in the
// message headers (traceparent, tracestate), the publish span being a child
// of the request that caused the event.
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Stream and subject names.
const (
	Stream        = "GODWIT_EVENTS"
	SubjectPrefix = "godwit."
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id.
	DuplicateWindow = 10 * time.Minute
)

const scope = "github.com/godwit-dev/godwit/internal/natsbus"

// Subject is the subject of events of type t.
func Subject(t string) string { return SubjectPrefix + t }

// Config is what Connect needs.
type Config struct {
	URL            string
	DB             *db.DB // for the publisher; nil for Tail
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	// Batch is the most events published per pass; default 500.
	Batch int
}

// Bus is a connection to NATS with JetStream.
type Bus struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	tracer trace.Tracer
}

// Connect connects to NATS and makes sure the stream exists.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Tracer: &cfg.TracerProvider})
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	nc, err := nats.Connect(cfg.URL, nats.Name("godwit"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", redact(cfg.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	b := &Bus{cfg: cfg, nc: nc, js: js, tracer: cfg.TracerProvider.Tracer(scope)}
	if err := b.ensureStream(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// redact drops credentials from a NATS URL for messages.
func redact(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// ensureStream creates the stream when it is absent (and leaves an existing
// one, which an operator may have tuned, as it is).
func (b *Bus) ensureStream(ctx context.Context) error {
	_, err := b.js.Stream(ctx, Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("natsbus: stream %s: %w", Stream, err)
	}
	_, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: Stream, Subjects: []string{SubjectPrefix + ">"}, Duplicates: DuplicateWindow,
		Description: "Godwit business events (CloudEvents JSON), one subject per type",
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("natsbus: create stream %s: %w", Stream, err)
	}
	return nil
}

// Close closes the connection.
func (b *Bus) Close() { b.nc.Close() }

// Publish publishes e under a span that continues e's trace, and reports
// whether JetStream took it as a duplicate of an earlier publish.
func (b *Bus) Publish(ctx context.Context, e events.Event) (duplicate bool, err error) {
	ctx, span := b.tracer.Start(e.TraceContext(ctx), "nats.publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", Subject(e.Type)),
			attribute.String("messaging.message.id", e.ID),
			attribute.String("cloudevents.event_id", e.ID),
			attribute.String("cloudevents.event_type", e.Type),
		))
	defer span.End()
	body, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	msg := nats.NewMsg(Subject(e.Type))
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, e.ID)
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(msg.Header))
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return false, fmt.Errorf("natsbus: publish %s: %w", e.ID, err)
	}
	span.SetAttributes(attribute.Bool("nats.duplicate", ack.Duplicate))
	return ack.Duplicate, nil
}

// PublishPass publishes the events not yet on the stream, oldest first, and
// marks them published. Replicas may run it together: an event two of them
// publish is one message (Nats-Msg-Id), and a crash between the publish and
// the mark republishes it, again as the same message within the window.
//
// It goes on with the next batch while a batch was full (up to 100), so a
// backlog drains at the rate NATS and the database allow, not one batch per
// interval.
func (b *Bus) PublishPass(ctx context.Context) error {
	for range 100 {
		n, err := b.PublishDue(ctx)
		if err != nil || n < b.cfg.Batch || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// PublishDue is PublishPass reporting how many events it published.
func (b *Bus) PublishDue(ctx context.Context) (int, error) {
	evs, err := unpublished(ctx, b.cfg.DB, b.cfg.Batch)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	var done []string
	var pubErr error
	for _, e := range evs {
		if _, err := b.Publish(ctx, e); err != nil {
			pubErr = err
			break // keep the order: the rest waits for the next pass
		}
		done = append(done, e.ID)
	}
	if len(done) > 0 {
		err := b.cfg.DB.InTx(context.WithoutCancel(ctx), func(ctx context.Context, tx *db.Tx) error {
			in, args := db.InList(2, done)
			_, err := tx.ExecContext(ctx, `UPDATE events SET published_at = $1 WHERE id IN (`+in+`)`, append([]any{db.Micros(b.cfg.Now())}, args...)...)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("natsbus: mark published: %w", err)
		}
	}
	return len(done), pubErr
}

func unpublished(ctx context.Context, d *db.DB, limit int) ([]events.Event, error) {
	rows, err := d.Read().QueryContext(ctx, `SELECT `+events.Columns+` FROM events WHERE published_at = 0 ORDER BY time, id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("natsbus: unpublished: %w", err)
	}
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		e, err := events.Scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// TailOptions select what Tail prints.
type TailOptions struct {
	Types []string  // none: every type
	Max   int       // stop after this many (0: no limit)
	Since time.Time // zero: from now on; else from this time on the stream
}

// Tail prints the events arriving on the stream (of o.Types, or all), one
// JSON line each, until ctx ends or o.Max events are printed. Each message
// is consumed under an events.consume span that continues the trace in its
// headers.
func (b *Bus) Tail(ctx context.Context, w io.Writer, o TailOptions) error {
	// One type is the consumer's filter subject. Several filter subjects on
	// one consumer need nats-server 2.10; for several types the consumer
	// takes the whole stream and the others are skipped here, so tail works
	// with 2.9 servers too (Debian's, for one).
	subjects := []string{SubjectPrefix + ">"}
	var wanted map[string]bool
	switch len(o.Types) {
	case 0:
	case 1:
		subjects = []string{Subject(o.Types[0])}
	default:
		wanted = map[string]bool{}
		for _, t := range o.Types {
			wanted[Subject(t)] = true
		}
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy}
	if !o.Since.IsZero() {
		since := o.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := b.js.OrderedConsumer(ctx, Stream, cfg)
	if err != nil {
		return fmt.Errorf("natsbus: consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("natsbus: consume: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for n := 0; o.Max == 0 || n < o.Max; {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("natsbus: next: %w", err)
		}
		if wanted != nil && !wanted[msg.Subject()] {
			continue
		}
		n++
		parent := propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(msg.Headers()))
		_, span := b.tracer.Start(parent, "events.consume", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.destination.name", msg.Subject()),
				attribute.String("messaging.message.id", msg.Headers().Get(jetstream.MsgIDHeader)),
			))
		_, werr := fmt.Fprintf(w, "%s\n", msg.Data())
		span.End()
		if werr != nil {
			return werr
		}
	}
	return nil
}
