package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/webhooks"
)

var start = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSignatureStandardVector: Sign reproduces the Standard Webhooks
// specification's published example signature.
func TestSignatureStandardVector(t *testing.T) {
	got, err := webhooks.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

// receiver is a webhook endpoint that verifies every delivery with the
// Standard Webhooks verifier and records what it accepted.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	down   int // answer 503 to this many more requests
	got    []events.Event
	hdrs   []http.Header
	bad    int // deliveries the verifier refused
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down > 0 {
		r.down--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	wh, err := standardwebhooks.NewWebhook(r.secret)
	if err != nil {
		r.t.Errorf("verifier: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	// The signature's timestamp is the test clock's; the verifier checks
	// it against the wall clock, so only the signature is verified here
	// (TestVerifierRejects covers the timestamp).
	if err := wh.VerifyIgnoringTimestamp(body, req.Header); err != nil {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("delivery body: %v", err)
	}
	if req.Header.Get("webhook-id") != e.ID {
		r.t.Errorf("webhook-id %s for event %s", req.Header.Get("webhook-id"), e.ID)
	}
	r.got = append(r.got, e)
	r.hdrs = append(r.hdrs, req.Header.Clone())
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, e := range r.got {
		out[i] = e.ID
	}
	return out
}

type rig struct {
	d     *db.DB
	clk   *clock
	svc   *webhooks.Service
	spans *tracetest.SpanRecorder
	tp    *sdktrace.TracerProvider
}

func newRig(t *testing.T, d *db.DB, mod func(*webhooks.Config)) *rig {
	t.Helper()
	r := &rig{d: d, clk: &clock{t: start}, spans: tracetest.NewSpanRecorder()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	t.Cleanup(func() { _ = r.tp.Shutdown(context.Background()) })
	r.svc = r.service(mod)
	return r
}

// service returns another Service on the rig's database: another replica,
// or the process after a restart.
func (r *rig) service(mod func(*webhooks.Config)) *webhooks.Service {
	cfg := webhooks.Config{DB: r.d, Now: r.clk.Now, TracerProvider: r.tp, AllowPrivate: true, Rand: func() float64 { return 0.5 },
		BaseBackoff: time.Second, MaxBackoff: time.Minute, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return webhooks.New(cfg)
}

// emit commits n points.earned events, each under a span of its own, and
// returns them.
func (r *rig) emit(t *testing.T, n int) []events.Event {
	t.Helper()
	var out []events.Event
	for i := range n {
		ctx, span := r.tp.Tracer("test").Start(context.Background(), "cause")
		e, err := events.New(ctx, events.PointsEarned, events.SourceLoyalty, "m1", r.clk.Now(), events.PointsEarnedData{
			MemberID: "m1", TransactionID: fmt.Sprint("tx", i), ActivityType: "hotel", ExternalID: fmt.Sprint("x", i),
			Points: 100, BasePoints: 100, Balance: int64(100 * (i + 1)), Tier: "blue"})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return events.Recorder{}.Record(ctx, tx, e) }); err != nil {
			t.Fatal(err)
		}
		span.End()
		out = append(out, e)
		r.clk.Add(time.Millisecond)
	}
	return out
}

func (r *rig) subscribe(t *testing.T, rc *receiver, types ...string) webhooks.Subscription {
	t.Helper()
	if len(types) == 0 {
		types = []string{events.PointsEarned}
	}
	sub, secret, err := r.svc.Create(context.Background(), webhooks.NewSubscription{URL: rc.srv.URL + "/hook", EventTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.secret = secret
	rc.mu.Unlock()
	return sub
}

// pass runs a fan-out and a delivery pass.
func (r *rig) pass(t *testing.T, svc *webhooks.Service) int {
	t.Helper()
	if _, err := svc.Fanout(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := svc.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ids(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: delivered %v, want %v", what, got, want)
	}
}

// TestDeliverySignedAndTraced: events committed before a subscription's
// deliveries run arrive once each, in order, signed (verified by the
// Standard Webhooks verifier), and each delivery span is a child of the span
// that caused its event, passing its own context on to the receiver.
func TestDeliverySignedAndTraced(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newRig(t, d, nil)
		rc := newReceiver(t)
		r.subscribe(t, rc)
		evs := r.emit(t, 5)
		// A restart between the commit and the delivery loses nothing: a
		// fresh Service (no memory of the events) delivers them.
		if n := r.pass(t, r.service(nil)); n != 5 {
			t.Errorf("%d delivered, want 5", n)
		}
		sameIDs(t, "first pass", rc.ids(), ids(evs))
		if n := r.pass(t, r.svc); n != 0 {
			t.Errorf("a second pass delivered %d again", n)
		}
		if rc.bad != 0 {
			t.Errorf("%d deliveries failed verification", rc.bad)
		}
		spans := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range r.spans.Ended() {
			spans[s.SpanContext().SpanID().String()] = s
		}
		for i, e := range evs {
			var deliver sdktrace.ReadOnlySpan
			for _, s := range r.spans.Ended() {
				for _, a := range s.Attributes() {
					if s.Name() == "webhook.deliver" && a.Key == "cloudevents.event_id" && a.Value.AsString() == e.ID {
						deliver = s
					}
				}
			}
			if deliver == nil {
				t.Fatalf("no webhook.deliver span for event %s", e.ID)
			}
			parent, ok := spans[deliver.Parent().SpanID().String()]
			if !ok || parent.Name() != "cause" || deliver.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("event %d: webhook.deliver's parent is %v, want the causing span", i, deliver.Parent())
			}
			if tp := rc.hdrs[i].Get("traceparent"); tp == "" || tp[36:52] != deliver.SpanContext().SpanID().String() {
				t.Errorf("event %d: receiver got traceparent %q, want the delivery span %s", i, tp, deliver.SpanContext().SpanID())
			}
		}
		// The delivery log.
		subs, _ := r.svc.List(context.Background())
		log, err := r.svc.Deliveries(context.Background(), subs[0].ID, "", 0)
		if err != nil || len(log) != 5 {
			t.Fatalf("delivery log: %d entries, %v", len(log), err)
		}
		for _, dl := range log {
			if dl.State != webhooks.DeliveryDelivered || dl.Attempts != 1 || dl.ResponseStatus != http.StatusNoContent || dl.FinishedAt.IsZero() {
				t.Errorf("log entry %+v", dl)
			}
		}
	})
}

// TestVerifierRejects: the Standard Webhooks verifier refuses a delivery
// signed with another secret, a tampered body, and a signature older than
// its tolerance.
func TestVerifierRejects(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"specversion":"1.0","id":"evt_1","source":"/godwit/loyalty","type":"points.earned"}`)
	headers := func(sec string, ts time.Time, b []byte) http.Header {
		sig, err := webhooks.Sign(sec, "evt_1", ts, b)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", "evt_1")
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	if err := wh.Verify(body, headers(secret, time.Now(), body)); err != nil {
		t.Fatalf("a good delivery: %v", err)
	}
	if err := wh.Verify(body, headers("whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", time.Now(), body)); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("another secret: %v", err)
	}
	if err := wh.Verify([]byte(`{"tampered":true}`), headers(secret, time.Now(), body)); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("a tampered body: %v", err)
	}
	if err := wh.Verify(body, headers(secret, time.Now().Add(-10*time.Minute), body)); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("an old signature: %v", err)
	}
}

// TestReceiverDownThenUp: a receiver that fails gets every event once it
// recovers; waits grow with each failed attempt; a delivery out of attempts
// is dead-lettered, and a subscription failing DisableAfter times in a row
// is disabled with a webhook.subscription_disabled event.
func TestReceiverDownThenUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newRig(t, d, func(c *webhooks.Config) { c.MaxAttempts = 4; c.DisableAfter = 12 })
		rc := newReceiver(t)
		sub := r.subscribe(t, rc)
		evs := r.emit(t, 3)
		rc.down = 6 // the first two passes fail all three
		r.pass(t, r.svc)
		r.clk.Add(time.Second) // first wait: 1 s (jitter fixed at the middle)
		r.pass(t, r.svc)
		if len(rc.ids()) != 0 {
			t.Fatalf("delivered while down: %v", rc.ids())
		}
		r.clk.Add(time.Second) // second wait is 2 s: nothing due yet
		if n := r.pass(t, r.svc); n != 0 || rc.down != 0 {
			t.Fatalf("a delivery was retried before its backoff ended (%d delivered, down %d)", n, rc.down)
		}
		r.clk.Add(time.Second)
		if n := r.pass(t, r.svc); n != 3 {
			t.Errorf("%d delivered after the receiver came back, want 3", n)
		}
		sameIDs(t, "after recovery", rc.ids(), ids(evs))
		log, _ := r.svc.Deliveries(context.Background(), sub.ID, "", 0)
		for _, dl := range log {
			if dl.Attempts != 3 || dl.State != webhooks.DeliveryDelivered {
				t.Errorf("log entry %+v, want delivered at attempt 3", dl)
			}
		}

		// Now down for good: attempts run out (dead letter), then the
		// subscription is disabled, with its own event.
		more := r.emit(t, 3)
		rc.down = 1 << 30
		for range 6 {
			r.pass(t, r.svc)
			r.clk.Add(time.Minute)
		}
		dead, _ := r.svc.Deliveries(context.Background(), sub.ID, webhooks.DeliveryDead, 0)
		if len(dead) != 3 {
			t.Errorf("%d dead deliveries, want 3 (one per event)", len(dead))
		}
		got, _ := r.svc.Get(context.Background(), sub.ID)
		if got.State != webhooks.StateDisabled || got.ConsecutiveFailures != 12 {
			t.Errorf("subscription %+v, want disabled after 12 failures", got)
		}
		disabled := eventstest.OfType(eventstest.All(t, d), events.WebhookDisabled)
		if len(disabled) != 1 || disabled[0].Subject != sub.ID {
			t.Fatalf("webhook.subscription_disabled events: %+v", disabled)
		}
		// Replaying the dead-lettered range after the endpoint is back and
		// the subscription resumed delivers exactly those events.
		rc.mu.Lock()
		rc.down, rc.got = 0, nil
		rc.mu.Unlock()
		active := webhooks.StateActive
		if _, err := r.svc.Update(context.Background(), sub.ID, webhooks.Patch{State: &active}); err != nil {
			t.Fatal(err)
		}
		n, err := r.svc.Replay(context.Background(), sub.ID, webhooks.ReplayRequest{From: more[0].Time, To: more[2].Time.Add(time.Microsecond)})
		if err != nil || n != 3 {
			t.Fatalf("replay: %d, %v", n, err)
		}
		r.pass(t, r.svc)
		sameIDs(t, "replayed range", rc.ids(), ids(more))
	})
}

// TestReplayExactly: a replay of one event or a range delivers exactly
// those events again, with their ids.
func TestReplayExactly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newRig(t, d, nil)
		rc := newReceiver(t)
		sub := r.subscribe(t, rc)
		evs := r.emit(t, 6)
		r.pass(t, r.svc)
		rc.mu.Lock()
		rc.got = nil
		rc.mu.Unlock()
		ctx := context.Background()
		if n, err := r.svc.Replay(ctx, sub.ID, webhooks.ReplayRequest{EventID: evs[4].ID}); err != nil || n != 1 {
			t.Fatalf("replay one: %d, %v", n, err)
		}
		r.pass(t, r.svc)
		sameIDs(t, "one event", rc.ids(), []string{evs[4].ID})
		rc.mu.Lock()
		rc.got = nil
		rc.mu.Unlock()
		if n, err := r.svc.Replay(ctx, sub.ID, webhooks.ReplayRequest{From: evs[1].Time, To: evs[3].Time}); err != nil || n != 2 {
			t.Fatalf("replay range: %d, %v", n, err)
		}
		r.pass(t, r.svc)
		sameIDs(t, "range [1, 3)", rc.ids(), ids(evs[1:3]))
		for _, c := range []struct {
			req  webhooks.ReplayRequest
			code string
		}{
			{webhooks.ReplayRequest{EventID: "evt_nope"}, webhooks.CodeEventNotFound},
			{webhooks.ReplayRequest{From: evs[3].Time, To: evs[1].Time}, webhooks.CodeInvalidReplay},
			{webhooks.ReplayRequest{}, webhooks.CodeInvalidReplay},
			{webhooks.ReplayRequest{EventID: evs[0].ID, From: evs[0].Time, To: evs[1].Time}, webhooks.CodeInvalidReplay},
		} {
			if _, err := r.svc.Replay(ctx, sub.ID, c.req); errs.CodeOf(err) != c.code {
				t.Errorf("replay %+v: %v, want %s", c.req, err, c.code)
			}
		}
	})
}

// TestReplicasDeliverOnce: several replicas running passes at once deliver
// each event exactly once; a replica that dies holding a claim leaves it to
// another once the lease ends, and the retry carries the same webhook-id.
func TestReplicasDeliverOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newRig(t, d, nil)
		rc := newReceiver(t)
		r.subscribe(t, rc)
		evs := r.emit(t, 40)
		var wg sync.WaitGroup
		for range 4 {
			svc := r.service(func(c *webhooks.Config) { c.Batch = 7 })
			wg.Go(func() {
				for range 10 {
					if _, err := svc.Fanout(context.Background()); err != nil {
						t.Error(err)
					}
					if _, err := svc.DeliverDue(context.Background()); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		got := rc.ids()
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
		}
		for _, e := range evs {
			if seen[e.ID] != 1 {
				t.Errorf("event %s delivered %d times", e.ID, seen[e.ID])
			}
		}
		if len(got) != len(evs) {
			t.Errorf("%d deliveries for %d events", len(got), len(evs))
		}
	})
}

// TestPrivateAddressesRefused: without AllowPrivate, a subscription to a
// loopback or private literal is refused, and a delivery to a name that
// resolves to loopback fails at dial time.
func TestPrivateAddressesRefused(t *testing.T) {
	for addr, public := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "192.168.0.1": false, "172.16.5.4": false, "169.254.169.254": false,
		"::1": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "100.64.0.1": false, "::ffff:127.0.0.1": false,
		"8.8.8.8": true, "2606:4700:4700::1111": true,
	} {
		if got := webhooks.Public(netip.MustParseAddr(addr)); got != public {
			t.Errorf("Public(%s) = %v, want %v", addr, got, public)
		}
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newRig(t, d, func(c *webhooks.Config) { c.AllowPrivate = false })
		ctx := context.Background()
		for _, u := range []string{"http://127.0.0.1:9/x", "http://[::1]/x", "http://localhost/x", "http://10.0.0.1/", "ftp://example.com/", "not a url"} {
			if _, _, err := r.svc.Create(ctx, webhooks.NewSubscription{URL: u, EventTypes: []string{events.PointsEarned}}); errs.CodeOf(err) != webhooks.CodeInvalidURL {
				t.Errorf("subscribe %q: %v, want %s", u, err, webhooks.CodeInvalidURL)
			}
		}
		// A subscription made where private targets were allowed (another
		// replica's configuration) is still refused by this one's dialer: the
		// check is on the address dialled, not only on the URL.
		rc := newReceiver(t)
		lenient := r.service(nil)
		sub, _, err := lenient.Create(ctx, webhooks.NewSubscription{URL: rc.srv.URL + "/hook", EventTypes: []string{events.PointsEarned}})
		if err != nil {
			t.Fatal(err)
		}
		r.emit(t, 1)
		if n := r.pass(t, r.svc); n != 0 {
			t.Errorf("delivered %d to a loopback address", n)
		}
		if len(rc.ids()) != 0 {
			t.Error("the receiver got a delivery")
		}
		log, err := r.svc.Deliveries(ctx, sub.ID, "", 0)
		if err != nil || len(log) != 1 || log[0].Attempts != 1 || !strings.Contains(log[0].LastError, "not public") {
			t.Errorf("delivery log %+v, %v: want one failed attempt refused as not public", log, err)
		}
	})
}
