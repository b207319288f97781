package stripe_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/payment/stripe"
)

// fixtureServer answers the PaymentIntent calls with the given bodies, as
// Stripe does for a card that asks for 3-D Secure (testdata holds intents in
// the shape of Stripe's API reference).
func fixtureServer(t *testing.T, answers map[string]string) (*stripe.Provider, *recorder) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := answers[r.Method+" "+r.URL.Path]
		if !ok {
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"unexpected"}}`, http.StatusNotFound)
			return
		}
		status := http.StatusOK
		if strings.HasPrefix(body, "400 ") {
			status, body = http.StatusBadRequest, strings.TrimPrefix(body, "400 ")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_fixture")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{next: http.DefaultTransport}
	p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: srv.URL, MaxNetworkRetries: -1, HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRequiresActionMapping: a confirmed intent that asks for 3-D Secure is a
// requires_action charge with Stripe's client secret and next action (not a
// decline), and error_on_requires_action is no longer sent; a failed
// authentication retrieved later is a decline with Stripe's code.
func TestRequiresActionMapping(t *testing.T) {
	waiting := readFixture(t, "pi_requires_action.json")
	p, rec := fixtureServer(t, map[string]string{
		"POST /v1/payment_intents":                                waiting,
		"GET /v1/payment_intents/pi_3QxThreeDS2eZvKYlo2C1a2b3c4d": readFixture(t, "pi_auth_failed.json"),
	})
	ch, err := p.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: "co_threeds1", Amount: money.Money{Amount: 4200, Currency: "EUR"}, Token: "pm_card_threeDSecure2Required"})
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if ch.Status != payment.StatusRequiresAction || ch.ID != "pi_3QxThreeDS2eZvKYlo2C1a2b3c4d" || ch.IdempotencyKey != "co_threeds1" ||
		ch.ClientSecret != "pi_3QxThreeDS2eZvKYlo2C1a2b3c4d_secret_t3dsOnlyForTheBrowser" || ch.Amount != (money.Money{Amount: 4200, Currency: "EUR"}) {
		t.Errorf("charge = %+v", ch)
	}
	var na struct {
		Type          string `json:"type"`
		RedirectToURL struct {
			URL string `json:"url"`
		} `json:"redirect_to_url"`
	}
	if err := json.Unmarshal(ch.NextAction, &na); err != nil || na.Type != "redirect_to_url" || !strings.HasPrefix(na.RedirectToURL.URL, "https://hooks.stripe.com/3d_secure_2/") {
		t.Errorf("next_action = %s (%v)", ch.NextAction, err)
	}
	if f := rec.sent()[0].Form; f.Has("error_on_requires_action") || f.Get("confirm") != "true" {
		t.Errorf("create form = %v; want confirm without error_on_requires_action", f)
	}
	// next_action's URL names the secret itself (it is for the browser); the
	// charge's own JSON must not add it as a field.
	if b, _ := json.Marshal(ch); strings.Contains(string(b), `"client_secret"`) {
		t.Errorf("a charge's JSON carries the client secret: %s", b)
	}

	got, err := p.Retrieve(context.Background(), ch.ID)
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if got.Status != payment.StatusDeclined || got.DeclineCode != payment.DeclineAuthenticationFailed || got.ClientSecret != "" {
		t.Errorf("retrieved after a failed authentication = %+v", got)
	}
}

// TestCancelSucceededMeanwhile: cancelling an intent that succeeded while the
// recovery pass gave up on it is a conflict, not a silent success.
func TestCancelSucceededMeanwhile(t *testing.T) {
	succeeded := strings.Replace(readFixture(t, "pi_requires_action.json"), `"status": "requires_action"`, `"status": "succeeded"`, 1)
	p, _ := fixtureServer(t, map[string]string{
		"POST /v1/payment_intents/pi_3QxThreeDS2eZvKYlo2C1a2b3c4d/cancel": `400 {"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"You cannot cancel this PaymentIntent because it has a status of succeeded."}}`,
		"GET /v1/payment_intents/pi_3QxThreeDS2eZvKYlo2C1a2b3c4d":         succeeded,
	})
	err := p.Cancel(context.Background(), "pi_3QxThreeDS2eZvKYlo2C1a2b3c4d")
	if errs.KindOf(err) != errs.Conflict || !errs.Is(err, payment.CodeChargeNotCancelable) {
		t.Fatalf("Cancel = %v, want conflict %s", err, payment.CodeChargeNotCancelable)
	}
}

// TestMockRetrieveCancel runs the calls a waiting checkout makes against
// stripe-mock: create and confirm (requires_action handled as a charge, not an
// error), retrieve and cancel.
func TestMockRetrieveCancel(t *testing.T) {
	p, rec, tr := mockProvider(t)
	ctx := context.Background()
	var ch payment.Charge
	var err error
	tr.call(ctx, func(ctx context.Context) {
		ch, err = p.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_mock3ds", Amount: money.Money{Amount: 1999, Currency: "EUR"}, Token: "pm_card_threeDSecure2Required"})
	})
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if ch.ID == "" {
		t.Fatalf("charge = %+v", ch)
	}
	got, err := p.Retrieve(ctx, ch.ID)
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if got.ID != ch.ID {
		t.Errorf("retrieved %q, want %q", got.ID, ch.ID)
	}
	if err := p.Cancel(ctx, ch.ID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	var paths []string
	for _, r := range rec.sent() {
		paths = append(paths, r.Method+" "+r.Path)
		if r.Path == "/v1/payment_intents" && r.Form.Has("error_on_requires_action") {
			t.Error("error_on_requires_action sent")
		}
		if strings.HasSuffix(r.Path, "/cancel") && r.IdempotencyKey != "cancel/"+ch.ID {
			t.Errorf("cancel Idempotency-Key = %q", r.IdempotencyKey)
		}
	}
	want := []string{"POST /v1/payment_intents", "GET /v1/payment_intents/" + ch.ID, "POST /v1/payment_intents/" + ch.ID + "/cancel"}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests = %q, want %q", paths, want)
	}
	assertNoLeak(t, "", tr.allAttributes())
}
