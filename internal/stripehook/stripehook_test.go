package stripehook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

const (
	secretOld = "whsec_old_test_secret_0123456789"
	secretNew = "whsec_new_test_secret_9876543210"
)

// clock is the injected clock of the retry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeCheckout stands in for checkout.Service: known charges settle, each
// settle of a charge counted; fail makes the next calls fail.
type fakeCheckout struct {
	mu       sync.Mutex
	known    map[string]bool
	settles  map[string]int
	refunds  map[string]money.Money
	disputes map[string]string
	fail     error
	knowAll  bool // every charge has its checkout
}

func newFake() *fakeCheckout {
	return &fakeCheckout{known: map[string]bool{}, settles: map[string]int{}, refunds: map[string]money.Money{}, disputes: map[string]string{}}
}

func (f *fakeCheckout) SettleCharge(_ context.Context, chargeID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return false, f.fail
	}
	if !f.known[chargeID] && !f.knowAll {
		return false, nil
	}
	f.settles[chargeID]++
	return true, nil
}

func (f *fakeCheckout) RefundedOutside(_ context.Context, chargeID string, refunded money.Money) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known[chargeID] && !f.knowAll {
		return false, nil
	}
	if refunded.Amount > f.refunds[chargeID].Amount {
		f.refunds[chargeID] = refunded
	}
	return true, nil
}

func (f *fakeCheckout) DisputeLost(_ context.Context, chargeID, disputeID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known[chargeID] {
		return false, nil
	}
	f.disputes[chargeID] = disputeID
	return true, nil
}

func (f *fakeCheckout) ChargeTraceParent(context.Context, string) string { return "" }

func (f *fakeCheckout) settleCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settles[id]
}

type harness struct {
	t     *testing.T
	d     *db.DB
	svc   *Service
	fake  *fakeCheckout
	clock *clock
	srv   *httptest.Server
	api   http.Handler
}

func newHarness(t *testing.T, d *db.DB, secrets []string, tweak func(*Config)) *harness {
	t.Helper()
	c := &clock{t: time.Now().UTC()}
	fake := newFake()
	cfg := Config{DB: d, Secrets: secrets, Settler: fake, Orders: fake, Now: c.now}
	if tweak != nil {
		tweak(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeys([]byte("stripehook-test-signing-secret-0123456789"), c.now)
	if err != nil {
		t.Fatal(err)
	}
	api := httpx.NewAPI(keys, nil, nil)
	api.Add(svc.Routes()...)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &harness{t: t, d: d, svc: svc, fake: fake, clock: c, srv: srv, api: api}
}

// eventJSON is a Stripe-shaped event whose data.object is obj.
func eventJSON(t *testing.T, id, typ string, obj map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": stripeapi.APIVersion, "created": time.Now().Unix(),
		"type": typ, "livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": obj}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func intent(id, status string, godwit bool) map[string]any {
	o := map[string]any{"id": id, "object": "payment_intent", "amount": 2500, "currency": "usd", "status": status, "metadata": map[string]any{}}
	if godwit {
		o["metadata"] = map[string]any{MetadataKey: "co_" + id}
	}
	return o
}

// sign signs payload with secret at ts (zero: now) with the SDK's test helper.
func sign(payload []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts}).Header
}

// post delivers payload with the Stripe-Signature header sig.
func (h *harness) post(payload []byte, sig string) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+Path, bytes.NewReader(payload))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (h *harness) count() int {
	h.t.Helper()
	var n int
	if err := h.d.Read().QueryRow(`SELECT COUNT(*) FROM stripe_events`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) stored(id string) event {
	h.t.Helper()
	e, err := h.svc.get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

func TestWebhookRefusesUnsignedAndStale(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{secretOld, secretNew}, nil)
		h.fake.known["pi_1"] = true
		payload := eventJSON(t, "evt_bad_1", TypeSucceeded, intent("pi_1", "succeeded", true))
		tampered := bytes.Replace(payload, []byte(`"amount":2500`), []byte(`"amount":1`), 1)
		cases := []struct {
			name, sig string
			body      []byte
			code      string
		}{
			{"no header", "", payload, CodeSignatureInvalid},
			{"malformed header", "garbage", payload, CodeSignatureInvalid},
			{"unknown secret", sign(payload, "whsec_somebody_else", time.Time{}), payload, CodeSignatureInvalid},
			{"tampered payload", sign(payload, secretOld, time.Time{}), tampered, CodeSignatureInvalid},
			{"outside tolerance", sign(payload, secretOld, time.Now().Add(-DefaultTolerance-time.Minute)), payload, CodeOutsideTolerance},
		}
		for _, c := range cases {
			st, body := h.post(c.body, c.sig)
			if st != http.StatusBadRequest || body["code"] != c.code {
				t.Errorf("%s: %d %v, want 400 %s", c.name, st, body, c.code)
			}
		}
		if n := h.count(); n != 0 {
			t.Errorf("refused deliveries stored %d events", n)
		}
		if n := h.fake.settleCount("pi_1"); n != 0 {
			t.Errorf("refused deliveries settled %d times", n)
		}
		// Within the tolerance and signed with either secret: accepted.
		for i, secret := range []string{secretOld, secretNew} {
			p := eventJSON(t, fmt.Sprintf("evt_rot_%d", i), TypeSucceeded, intent("pi_1", "succeeded", true))
			if st, body := h.post(p, sign(p, secret, time.Now().Add(-DefaultTolerance+time.Minute))); st != 200 || body["outcome"] != OutcomeSettled {
				t.Errorf("secret %d: %d %v", i, st, body)
			}
		}
		if n := h.fake.settleCount("pi_1"); n != 2 {
			t.Errorf("two events settled %d times", n)
		}
	})
}

func TestWebhookNotConfigured(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{" ", ""}, nil)
		p := eventJSON(t, "evt_nc", TypeSucceeded, intent("pi_1", "succeeded", true))
		if st, body := h.post(p, sign(p, secretOld, time.Time{})); st != http.StatusServiceUnavailable || body["code"] != CodeNotConfigured {
			t.Errorf("%d %v", st, body)
		}
		if h.count() != 0 {
			t.Error("an unconfigured endpoint stored an event")
		}
	})
}

func TestWebhookConcurrentDuplicates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{secretOld}, nil)
		h.fake.known["pi_dup"] = true
		p := eventJSON(t, "evt_dup", TypeSucceeded, intent("pi_dup", "succeeded", true))
		sig := sign(p, secretOld, time.Time{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		fresh := 0
		for range 20 {
			wg.Go(func() {
				st, body := h.post(p, sig)
				mu.Lock()
				defer mu.Unlock()
				statuses[st]++
				if body["duplicate"] == false {
					fresh++
				}
			})
		}
		wg.Wait()
		if statuses[200] != 20 {
			t.Errorf("statuses %v, want 20 × 200", statuses)
		}
		if fresh != 1 {
			t.Errorf("%d deliveries stored the event, want 1", fresh)
		}
		if n := h.count(); n != 1 {
			t.Errorf("%d events stored, want 1", n)
		}
		// An attempt that lost the claim race left it to the holder; the
		// retry pass finds nothing more to do.
		h.clock.add(time.Hour)
		if err := h.svc.RetryPass(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := h.fake.settleCount("pi_dup"); n != 1 {
			t.Errorf("settled %d times, want 1", n)
		}
		if e := h.stored("evt_dup"); e.State != stateProcessed || e.Outcome != OutcomeSettled || e.Attempts != 1 {
			t.Errorf("stored %+v", e)
		}
	})
}

func TestWebhookUnknownIntent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{secretOld}, nil)
		p := eventJSON(t, "evt_unknown", TypeSucceeded, intent("pi_someone_else", "succeeded", false))
		st, body := h.post(p, sign(p, secretOld, time.Time{}))
		if st != 200 || body["state"] != stateIgnored || body["outcome"] != OutcomeUnknownIntent {
			t.Fatalf("%d %v", st, body)
		}
		e := h.stored("evt_unknown")
		if e.State != stateIgnored || e.ChargeID != "pi_someone_else" || e.Amount != 2500 || e.Currency != "USD" {
			t.Errorf("stored %+v", e)
		}
		// Redelivered: still one row, nothing retried.
		if st, body := h.post(p, sign(p, secretOld, time.Time{})); st != 200 || body["duplicate"] != true {
			t.Errorf("redelivery: %d %v", st, body)
		}
		if ids, _ := h.svc.due(context.Background(), 10); len(ids) != 0 || h.count() != 1 {
			t.Errorf("due %v, %d rows", ids, h.count())
		}
		// A type the endpoint does not act on is recorded and ignored too.
		p = eventJSON(t, "evt_other", "customer.created", map[string]any{"id": "cus_1", "object": "customer"})
		if st, body := h.post(p, sign(p, secretOld, time.Time{})); st != 200 || body["outcome"] != OutcomeUnhandledType {
			t.Errorf("other type: %d %v", st, body)
		}
	})
}

// An event for Godwit's charge whose checkout is not recorded yet waits and
// is retried until the checkout appears, or given up after RetryFor.
func TestWebhookWaitsForItsCheckout(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{secretOld}, nil)
		ctx := context.Background()
		p := eventJSON(t, "evt_early", TypeSucceeded, intent("pi_early", "succeeded", true))
		st, body := h.post(p, sign(p, secretOld, time.Time{}))
		if st != 200 || body["state"] != statePending || body["outcome"] != OutcomeWaitingCheckout {
			t.Fatalf("%d %v", st, body)
		}
		// Not due yet: the pass leaves it.
		if err := h.svc.RetryPass(ctx); err != nil {
			t.Fatal(err)
		}
		if e := h.stored("evt_early"); e.Attempts != 1 {
			t.Errorf("retried before its time: %+v", e)
		}
		h.fake.known["pi_early"] = true
		h.clock.add(3 * time.Second)
		if err := h.svc.RetryPass(ctx); err != nil {
			t.Fatal(err)
		}
		if e := h.stored("evt_early"); e.State != stateProcessed || e.Outcome != OutcomeSettled || h.fake.settleCount("pi_early") != 1 {
			t.Errorf("after the checkout appeared: %+v, %d settles", e, h.fake.settleCount("pi_early"))
		}
		// One whose checkout never appears is given up after an hour.
		p = eventJSON(t, "evt_never", TypePaymentFailed, intent("pi_never", "requires_payment_method", true))
		h.post(p, sign(p, secretOld, time.Time{}))
		for range 40 {
			h.clock.add(5 * time.Minute)
			if err := h.svc.RetryPass(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if e := h.stored("evt_never"); e.State != stateIgnored || e.Outcome != OutcomeExpired || e.Attempts < 10 {
			t.Errorf("never found: %+v", e)
		}
		// A failing settle is retried too.
		h.fake.known["pi_flaky"] = true
		h.fake.fail = errors.New("checkout database unavailable")
		p = eventJSON(t, "evt_flaky", TypeCanceled, intent("pi_flaky", "canceled", true))
		if st, body := h.post(p, sign(p, secretOld, time.Time{})); st != 200 || body["outcome"] != OutcomeError {
			t.Fatalf("flaky: %d %v", st, body)
		}
		h.fake.mu.Lock()
		h.fake.fail = nil
		h.fake.mu.Unlock()
		h.clock.add(3 * time.Second)
		if err := h.svc.RetryPass(ctx); err != nil {
			t.Fatal(err)
		}
		if e := h.stored("evt_flaky"); e.State != stateProcessed || h.fake.settleCount("pi_flaky") != 1 {
			t.Errorf("flaky: %+v", e)
		}
	})
}

// A process dying after it stored (and claimed) an event leaves it to the
// retry job, which settles it exactly once.
func TestWebhookCrashAfterAccept(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		var crash sync.Once
		h := newHarness(t, d, []string{secretOld}, func(c *Config) {
			c.FailAfterAccept = func(string) error {
				var err error
				crash.Do(func() { err = errors.New("process killed") })
				return err
			}
		})
		h.fake.known["pi_crash"] = true
		ctx := context.Background()
		p := eventJSON(t, "evt_crash", TypeSucceeded, intent("pi_crash", "succeeded", true))
		if st, _ := h.post(p, sign(p, secretOld, time.Time{})); st != http.StatusInternalServerError {
			t.Fatalf("crashed delivery answered %d", st)
		}
		// Stripe redelivers while the dead attempt's claim runs: stored,
		// left alone.
		if st, body := h.post(p, sign(p, secretOld, time.Time{})); st != 200 || body["duplicate"] != true || body["state"] != statePending {
			t.Fatalf("redelivery: %d %v", st, body)
		}
		if err := h.svc.RetryPass(ctx); err != nil {
			t.Fatal(err)
		}
		if n := h.fake.settleCount("pi_crash"); n != 0 {
			t.Fatalf("settled %d times while the claim ran", n)
		}
		h.clock.add(DefaultClaim + time.Second)
		for range 3 {
			if err := h.svc.RetryPass(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := h.fake.settleCount("pi_crash"); n != 1 {
			t.Errorf("settled %d times, want 1", n)
		}
		if e := h.stored("evt_crash"); e.State != stateProcessed || e.Attempts != 2 {
			t.Errorf("stored %+v", e)
		}
	})
}

func TestWebhookChargeEvents(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{secretOld}, nil)
		h.fake.known["pi_c"] = true
		deliver := func(id, typ string, obj map[string]any) map[string]any {
			p := eventJSON(t, id, typ, obj)
			st, body := h.post(p, sign(p, secretOld, time.Time{}))
			if st != 200 {
				t.Fatalf("%s: %d %v", id, st, body)
			}
			return body
		}
		charge := map[string]any{"id": "ch_c", "object": "charge", "amount": 2500, "amount_refunded": 700, "currency": "eur", "payment_intent": "pi_c"}
		if body := deliver("evt_rf", TypeRefunded, charge); body["outcome"] != OutcomeRefundApplied {
			t.Errorf("refund: %v", body)
		}
		if got := h.fake.refunds["pi_c"]; got != (money.Money{Amount: 700, Currency: "EUR"}) {
			t.Errorf("refunded %v", got)
		}
		dispute := map[string]any{"id": "dp_c", "object": "dispute", "amount": 1800, "currency": "eur", "charge": "ch_c",
			"payment_intent": "pi_c", "status": "needs_response"}
		if body := deliver("evt_dp1", TypeDisputeOpened, dispute); body["outcome"] != OutcomeRecorded {
			t.Errorf("dispute opened: %v", body)
		}
		dispute["status"] = "won"
		if body := deliver("evt_dp2", TypeDisputeClosed, dispute); body["outcome"] != OutcomeRecorded || h.fake.disputes["pi_c"] != "" {
			t.Errorf("dispute won: %v", body)
		}
		dispute["status"] = "lost"
		if body := deliver("evt_dp3", TypeDisputeClosed, dispute); body["outcome"] != OutcomeDisputeLost || h.fake.disputes["pi_c"] != "dp_c" {
			t.Errorf("dispute lost: %v %v", body, h.fake.disputes)
		}
		if e := h.stored("evt_dp3"); e.ObjectStatus != "lost" || e.ObjectID != "dp_c" || e.ChargeID != "pi_c" {
			t.Errorf("stored %+v", e)
		}
	})
}
