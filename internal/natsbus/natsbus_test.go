package natsbus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/natsbus"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

const natsURL = "nats://127.0.0.1:4222"

func needNATS(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		t.Skipf("no NATS server answers on 127.0.0.1:4222 (%v); start one with JetStream (nats-server -js) to run this test", err)
	}
	c.Close()
}

// lineWriter hands each line Tail prints to a channel.
type lineWriter struct{ lines chan string }

func (w lineWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		w.lines <- sc.Text()
	}
	return len(p), nil
}

// TestPublishTailDeduplicate, with the real NATS server: committed events
// arrive on the stream under godwit.<type>, a second publish of an event is
// dropped by JetStream as a duplicate (same Nats-Msg-Id), Tail prints them,
// and the consumer span continues the trace of the request that caused the
// event through the publish span.
func TestPublishTailDeduplicate(t *testing.T) {
	needNATS(t)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		bus, err := natsbus.Connect(ctx, natsbus.Config{URL: natsURL, DB: d, TracerProvider: tp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bus.Close)

		since := time.Now().Add(-time.Second)
		var want []events.Event
		for i := range 3 {
			cctx, span := tp.Tracer("test").Start(ctx, "cause")
			e, err := events.New(cctx, events.TierChanged, events.SourceLoyalty, "m", time.Now(), events.TierChangedData{
				MemberID: "m", FromTier: "blue", ToTier: "silver", Direction: "up", Reason: "qualified", StatusPoints: int64(i)})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return events.Recorder{}.Record(ctx, tx, e) }); err != nil {
				t.Fatal(err)
			}
			span.End()
			want = append(want, e)
		}
		n, err := bus.PublishDue(ctx)
		if err != nil || n != 3 {
			t.Fatalf("published %d, %v; want 3", n, err)
		}
		if n, err := bus.PublishDue(ctx); err != nil || n != 0 {
			t.Errorf("a second pass published %d, %v", n, err)
		}
		dup, err := bus.Publish(ctx, want[1])
		if err != nil || !dup {
			t.Errorf("republishing %s: duplicate %v, %v; want JetStream to drop it", want[1].ID, dup, err)
		}

		lines := make(chan string, 1000)
		tailCtx, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := bus.Tail(tailCtx, lineWriter{lines}, natsbus.TailOptions{Types: []string{events.TierChanged}, Since: since}); err != nil {
				t.Errorf("tail: %v", err)
			}
		})
		seen := map[string]int{}
		for missing := len(want); missing > 0; {
			select {
			case l := <-lines:
				var e events.Event
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("tail printed %q: %v", l, err)
				}
				for _, w := range want {
					if w.ID == e.ID {
						seen[e.ID]++
						if seen[e.ID] == 1 {
							missing--
						}
					}
				}
			case <-ctx.Done():
				t.Fatalf("tail printed %d of %d events", len(seen), len(want))
			}
		}
		stop()
		wg.Wait()
		for len(lines) > 0 { // anything printed after the last wanted line
			var e events.Event
			_ = json.Unmarshal([]byte(<-lines), &e)
			seen[e.ID]++
		}
		for _, w := range want {
			if seen[w.ID] != 1 {
				t.Errorf("event %s on the stream %d times, want once", w.ID, seen[w.ID])
			}
		}
		// The trace: cause → nats.publish → events.consume.
		byID := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range spans.Ended() {
			byID[s.SpanContext().SpanID().String()] = s
		}
		consumed := 0
		for _, s := range spans.Ended() {
			if s.Name() != "events.consume" {
				continue
			}
			pub, ok := byID[s.Parent().SpanID().String()]
			if !ok || pub.Name() != "nats.publish" {
				continue // another test's message
			}
			if cause, ok := byID[pub.Parent().SpanID().String()]; ok && cause.Name() == "cause" && cause.SpanContext().TraceID() == s.SpanContext().TraceID() {
				consumed++
			}
		}
		if consumed < len(want) {
			t.Errorf("%d events.consume spans continue a cause's trace through nats.publish, want %d", consumed, len(want))
		}
	})
}
