package stripe_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/payment/stripe"
)

// mockProvider returns a provider pointed at the stripe-mock named by
// GODWIT_TEST_STRIPE_MOCK (start one with scripts/stripe-mock.sh), with every
// request recorded; the test is skipped when none is running.
func mockProvider(t *testing.T) (*stripe.Provider, *recorder, *tracing) {
	t.Helper()
	base := os.Getenv("GODWIT_TEST_STRIPE_MOCK")
	if base == "" {
		t.Skip("stripe-mock tests skipped: GODWIT_TEST_STRIPE_MOCK is not set (run scripts/stripe-mock.sh and export GODWIT_TEST_STRIPE_MOCK=http://127.0.0.1:12111)")
	}
	probe, err := http.NewRequest(http.MethodGet, strings.TrimRight(base, "/")+"/v1/balance", nil)
	if err != nil {
		t.Fatalf("GODWIT_TEST_STRIPE_MOCK=%q: %v", base, err)
	}
	probe.SetBasicAuth(testKey, "")
	res, err := (&http.Client{Timeout: 2 * time.Second}).Do(probe)
	if err != nil {
		t.Skipf("stripe-mock tests skipped: nothing answers at GODWIT_TEST_STRIPE_MOCK=%s (run scripts/stripe-mock.sh)", base)
	}
	_ = res.Body.Close()
	if res.Header.Get("Stripe-Mock-Version") == "" {
		t.Skipf("stripe-mock tests skipped: %s answers but is not stripe-mock", base)
	}
	rec := &recorder{next: http.DefaultTransport}
	tr := newTracing(t)
	p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: base, HTTPClient: &http.Client{Transport: rec, Timeout: 10 * time.Second},
		MaxNetworkRetries: -1, TracerProvider: tr.tp})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec, tr
}

func TestMockCharge(t *testing.T) {
	cases := []struct {
		name     string
		amount   money.Money
		token    string
		wantPath []string
		wantCur  string
	}{
		{"token usd", money.Money{Amount: 1999, Currency: "USD"}, "tok_visa", []string{"/v1/payment_methods", "/v1/payment_intents"}, "usd"},
		{"payment method jpy", money.Money{Amount: 500, Currency: "JPY"}, "pm_card_visa", []string{"/v1/payment_intents"}, "jpy"},
		{"three-decimal kwd", money.Money{Amount: 12345, Currency: "KWD"}, "pm_card_mastercard", []string{"/v1/payment_intents"}, "kwd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, tr := mockProvider(t)
			key := "chk_" + strings.ReplaceAll(tc.name, " ", "_")
			var ch payment.Charge
			var err error
			attrs := tr.call(context.Background(), func(ctx context.Context) {
				ch, err = p.Charge(ctx, payment.ChargeRequest{IdempotencyKey: key, Amount: tc.amount, Token: tc.token, Description: "Godwit order"})
			})
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if !strings.HasPrefix(ch.ID, "pi_") || ch.Status != payment.StatusSucceeded || ch.Amount != tc.amount || ch.IdempotencyKey != key {
				t.Errorf("charge = %+v", ch)
			}
			reqs := rec.sent()
			var paths []string
			for _, r := range reqs {
				paths = append(paths, r.Method+" "+r.Path)
			}
			var want []string
			for _, p := range tc.wantPath {
				want = append(want, "POST "+p)
			}
			if diff := cmp.Diff(want, paths); diff != "" {
				t.Fatalf("requests (-want +got):\n%s", diff)
			}
			pi := reqs[len(reqs)-1]
			if pi.IdempotencyKey != key {
				t.Errorf("PaymentIntent Idempotency-Key = %q, want %q", pi.IdempotencyKey, key)
			}
			wantForm := map[string]string{
				"amount": "", "currency": tc.wantCur, "confirm": "true",
				"payment_method_types[0]": "card", "metadata[godwit_idempotency_key]": key, "description": "Godwit order",
			}
			wantForm["amount"] = map[string]string{"USD": "1999", "JPY": "500", "KWD": "12345"}[tc.amount.Currency]
			for k, v := range wantForm {
				if got := pi.Form.Get(k); got != v {
					t.Errorf("form %s = %q, want %q", k, got, v)
				}
			}
			if pi.Form.Has("error_on_requires_action") {
				t.Error("error_on_requires_action sent; a card asking for 3-D Secure must answer requires_action")
			}
			if pi.Form.Has("automatic_payment_methods[enabled]") {
				t.Error("automatic_payment_methods sent; payment_method_types=card is the choice")
			}
			if tc.token == "tok_visa" {
				pmReq := reqs[0]
				if pmReq.IdempotencyKey != key+"/payment_method" || pmReq.Form.Get("card[token]") != "tok_visa" || pmReq.Form.Get("type") != "card" {
					t.Errorf("payment method request = %+v", pmReq)
				}
				if pi.Form.Get("payment_method") == "" || pi.Form.Get("payment_method") == "tok_visa" {
					t.Errorf("payment_method = %q, want the created pm id", pi.Form.Get("payment_method"))
				}
			} else if pi.Form.Get("payment_method") != tc.token {
				t.Errorf("payment_method = %q, want %q", pi.Form.Get("payment_method"), tc.token)
			}
			if !strings.HasPrefix(attrs["payment.stripe_request_id"].AsString(), "req_") {
				t.Errorf("payment.stripe_request_id = %q", attrs["payment.stripe_request_id"].AsString())
			}
			for _, r := range reqs {
				if r.Auth != "Bearer "+testKey {
					t.Errorf("Authorization header not the configured key")
				}
			}
			assertNoLeak(t, "", tr.allAttributes())
		})
	}
}

func TestMockRefund(t *testing.T) {
	cases := []struct {
		name   string
		amount money.Money
	}{
		{"full", money.Money{Amount: 1999, Currency: "USD"}},
		{"partial", money.Money{Amount: 500, Currency: "USD"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, tr := mockProvider(t)
			var rf payment.Refund
			var err error
			attrs := tr.call(context.Background(), func(ctx context.Context) {
				rf, err = p.Refund(ctx, "pi_godwit1", tc.amount, "refund_"+tc.name)
			})
			if err != nil {
				t.Fatalf("Refund: %v", err)
			}
			want := payment.Refund{ID: rf.ID, ChargeID: "pi_godwit1", Amount: tc.amount}
			if diff := cmp.Diff(want, rf); diff != "" || !strings.HasPrefix(rf.ID, "re_") {
				t.Errorf("refund (-want +got):\n%s", diff)
			}
			reqs := rec.sent()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/v1/refunds" || r.IdempotencyKey != "refund_"+tc.name ||
				r.Form.Get("payment_intent") != "pi_godwit1" || r.Form.Get("amount") != map[string]string{"full": "1999", "partial": "500"}[tc.name] {
				t.Errorf("refund request = %s %s key %q form %v", r.Method, r.Path, r.IdempotencyKey, r.Form)
			}
			if !strings.HasPrefix(attrs["payment.stripe_request_id"].AsString(), "req_") {
				t.Error("no payment.stripe_request_id on the span")
			}
		})
	}
}

func TestMockVoid(t *testing.T) {
	p, rec, _ := mockProvider(t)
	ch, err := p.Void(context.Background(), "pi_godwit2")
	if err != nil {
		t.Fatalf("Void: %v", err)
	}
	if ch.Status != payment.StatusVoided {
		t.Errorf("status = %q, want voided", ch.Status)
	}
	var got []string
	for _, r := range rec.sent() {
		got = append(got, r.Method+" "+r.Path+" key="+r.IdempotencyKey)
	}
	// stripe-mock's fixture intent is not captured, so Void cancels it.
	want := []string{"GET /v1/payment_intents/pi_godwit2 key=", "POST /v1/payment_intents/pi_godwit2/cancel key=void/pi_godwit2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestMockLookup(t *testing.T) {
	p, rec, _ := mockProvider(t)
	ch, err := p.Lookup(context.Background(), "chk_it's")
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !strings.HasPrefix(ch.ID, "pi_") || ch.IdempotencyKey != "chk_it's" {
		t.Errorf("charge = %+v", ch)
	}
	reqs := rec.sent()
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/v1/payment_intents/search" {
		t.Fatalf("requests = %+v", reqs)
	}
	if q, want := reqs[0].Query.Get("query"), `metadata['godwit_idempotency_key']:'chk_it\'s'`; q != want {
		t.Errorf("query = %q, want %q", q, want)
	}
}

// TestMockManualCapture: a manual-capture charge asks Stripe for
// capture_method=manual and answers authorized; Capture posts
// amount_to_capture under the caller's key and answers the captured charge.
func TestMockManualCapture(t *testing.T) {
	p, rec, tr := mockProvider(t)
	amount := money.Money{Amount: 1999, Currency: "USD"}
	ch, err := p.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: "chk_manual", Amount: amount, Token: "pm_card_visa", CaptureManual: true})
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if ch.Status != payment.StatusAuthorized {
		t.Errorf("status = %q, want authorized", ch.Status)
	}
	reqs := rec.sent()
	if got := reqs[len(reqs)-1].Form.Get("capture_method"); got != "manual" {
		t.Errorf("capture_method = %q, want manual", got)
	}
	part := money.Money{Amount: 1500, Currency: "USD"}
	var captured payment.Charge
	attrs := tr.call(context.Background(), func(ctx context.Context) {
		captured, err = p.Capture(ctx, ch.ID, part, "capture/ord_1")
	})
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	if captured.Status != payment.StatusSucceeded || captured.Amount != part {
		t.Errorf("captured = %+v, want succeeded for %s", captured, part)
	}
	reqs = rec.sent()
	r := reqs[len(reqs)-1]
	if r.Method != http.MethodPost || r.Path != "/v1/payment_intents/"+ch.ID+"/capture" || r.IdempotencyKey != "capture/ord_1" ||
		r.Form.Get("amount_to_capture") != "1500" {
		t.Errorf("capture request = %s %s key %q form %v", r.Method, r.Path, r.IdempotencyKey, r.Form)
	}
	if !strings.HasPrefix(attrs["payment.stripe_request_id"].AsString(), "req_") {
		t.Error("no payment.stripe_request_id on the span")
	}
	if _, err := p.Capture(context.Background(), ch.ID, money.Money{Currency: "USD"}, "k"); err == nil {
		t.Error("Capture of nothing: no error")
	}
	if _, err := p.Capture(context.Background(), ch.ID, part, ""); err == nil {
		t.Error("Capture without a key: no error")
	}
}
