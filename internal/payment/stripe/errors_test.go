package stripe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/payment/stripe"
)

// Error bodies in the shape Stripe's API returns them (type, code,
// decline_code, message, doc_url, request_log_url, and for card errors the
// charge and the failed PaymentIntent with its client secret).
func cardError(code, decline, msg string) string {
	dc := ""
	if decline != "" {
		dc = `"decline_code": "` + decline + `",`
	}
	return `{
  "error": {
    "charge": "ch_3PqRsT2eZvKYlo2C0abcdefg",
    "code": "` + code + `",
    ` + dc + `
    "doc_url": "https://stripe.com/docs/error-codes/` + code + `",
    "message": "` + msg + `",
    "payment_intent": {
      "id": "pi_3PqRsT2eZvKYlo2C0hijklmn",
      "object": "payment_intent",
      "amount": 1999,
      "currency": "usd",
      "client_secret": "pi_3PqRsT2eZvKYlo2C0hijklmn_secret_doNotLeakThis",
      "status": "requires_payment_method",
      "metadata": {"godwit_idempotency_key": "chk_1"}
    },
    "payment_method": {"id": "pm_1PqRsT2eZvKYlo2Cabc", "object": "payment_method", "type": "card"},
    "request_log_url": "https://dashboard.stripe.com/test/logs/req_declined1?t=1700000000",
    "type": "card_error"
  }
}`
}

func TestErrorMapping(t *testing.T) {
	type want struct {
		Decline *payment.DeclineError
		Kind    errs.Kind
		Code    string
	}
	cases := []struct {
		name   string
		status int
		body   string
		want   want
	}{
		{"generic_decline", 402, cardError("card_declined", "generic_decline", "Your card was declined."),
			want{Decline: &payment.DeclineError{Code: "generic_decline"}}},
		{"insufficient_funds", 402, cardError("card_declined", "insufficient_funds", "Your card has insufficient funds."),
			want{Decline: &payment.DeclineError{Code: "insufficient_funds"}}},
		{"lost_card", 402, cardError("card_declined", "lost_card", "Your card was declined."),
			want{Decline: &payment.DeclineError{Code: "lost_card"}}},
		{"stolen_card", 402, cardError("card_declined", "stolen_card", "Your card was declined."),
			want{Decline: &payment.DeclineError{Code: "stolen_card"}}},
		{"expired_card", 402, cardError("expired_card", "expired_card", "Your card has expired."),
			want{Decline: &payment.DeclineError{Code: "expired_card"}}},
		{"incorrect_cvc", 402, cardError("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
			want{Decline: &payment.DeclineError{Code: "incorrect_cvc"}}},
		{"processing_error", 402, cardError("processing_error", "processing_error", "An error occurred while processing your card. Try again in a little bit."),
			want{Decline: &payment.DeclineError{Code: "processing_error", Soft: true}}},
		{"try_again_later", 402, cardError("card_declined", "try_again_later", "Your card was declined."),
			want{Decline: &payment.DeclineError{Code: "try_again_later", Soft: true}}},
		{"card_decline_rate_limit", 402, cardError("card_decline_rate_limit_exceeded", "", "This card has been declined too many times."),
			want{Decline: &payment.DeclineError{Code: "card_decline_rate_limit_exceeded", Soft: true}}},
		{"rate_limit", 429, `{"error": {"code": "rate_limit", "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
			"message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.", "type": "invalid_request_error"}}`,
			want{Kind: errs.Unavailable, Code: "payment_gateway_busy"}},
		{"authentication_error", 401, `{"error": {"message": "Invalid API Key provided: sk_test_****e123", "type": "invalid_request_error"}}`,
			want{Kind: errs.BadGateway, Code: "payment_gateway_auth"}},
		{"authentication_error_type", 401, `{"error": {"message": "Invalid API Key provided: sk_test_****e123", "type": "authentication_error"}}`,
			want{Kind: errs.BadGateway, Code: "payment_gateway_auth"}},
		{"api_error", 500, `{"error": {"message": "An unknown error occurred", "type": "api_error"}}`,
			want{Kind: errs.BadGateway, Code: "payment_gateway_error"}},
		{"idempotency_error", 400, `{"error": {"message": "Keys for idempotent requests can only be used with the same parameters they were first used with.", "type": "idempotency_error"}}`,
			want{Kind: errs.Unprocessable, Code: "idempotency_key_reused"}},
		{"amount_too_small", 400, `{"error": {"code": "amount_too_small", "message": "Amount must be at least $0.50 usd", "param": "amount", "type": "invalid_request_error"}}`,
			want{Kind: errs.Unprocessable, Code: "invalid_amount"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Request-Id", "req_"+tc.name)
				w.Header().Set("Stripe-Should-Retry", "false")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			tr := newTracing(t)
			p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: srv.URL, MaxNetworkRetries: -1, TracerProvider: tr.tp})
			if err != nil {
				t.Fatal(err)
			}
			var chErr error
			attrs := tr.call(context.Background(), func(ctx context.Context) {
				_, chErr = p.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "chk_1", Amount: money.Money{Amount: 1999, Currency: "USD"}, Token: "pm_card_visa"})
			})
			if chErr == nil {
				t.Fatal("Charge succeeded; want an error")
			}
			var got want
			if d, ok := payment.AsDecline(chErr); ok {
				got.Decline = d
			} else if e, ok := errs.As(chErr); ok {
				got.Kind, got.Code = e.Kind, e.Code
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mapped error (-want +got):\n%s\nerror: %v", diff, chErr)
			}
			if id := attrs["payment.stripe_request_id"].AsString(); id != "req_"+tc.name {
				t.Errorf("span payment.stripe_request_id = %q, want %q", id, "req_"+tc.name)
			}
			assertNoLeak(t, chErr.Error(), tr.allAttributes())
		})
	}
}

// assertNoLeak fails when the key, a client secret, a payment method id or
// Stripe's message text shows up in an error string or on a span.
func assertNoLeak(t *testing.T, errText string, attrs []string) {
	t.Helper()
	for _, secret := range []string{testKey, "sk_test_", "secret_", "pm_1PqRsT", "Invalid API Key", "Your card"} {
		if strings.Contains(errText, secret) {
			t.Errorf("error text %q contains %q", errText, secret)
		}
		for _, a := range attrs {
			if strings.Contains(a, secret) {
				t.Errorf("span attribute %q contains %q", a, secret)
			}
		}
	}
}

func TestTransportErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: "http://" + addr, MaxNetworkRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: "chk_1", Amount: money.Money{Amount: 100, Currency: "USD"}, Token: "pm_card_visa"})
		if k, c := errs.KindOf(err), errs.CodeOf(err); k != errs.Unavailable || c != "payment_gateway_unavailable" {
			t.Errorf("got %s/%s (%v), want unavailable/payment_gateway_unavailable", k, c, err)
		}
		assertNoLeak(t, err.Error(), nil)
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(func() { close(release); srv.Close() })
		p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: srv.URL, MaxNetworkRetries: -1,
			HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: "chk_1", Amount: money.Money{Amount: 100, Currency: "USD"}, Token: "pm_card_visa"})
		if k := errs.KindOf(err); k != errs.Timeout {
			t.Errorf("got kind %s (%v), want timeout", k, err)
		}
	})
}

// TestRetryReusesIdempotencyKey: the SDK's own retry of a create whose
// connection failed sends the checkout's key again, so Stripe can only make
// one intent.
func TestRetryReusesIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		n := len(keys)
		mu.Unlock()
		if n == 1 {
			// The connection drops before an answer: the SDK retries.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_retry")
		_, _ = w.Write([]byte(`{"id": "pi_retry", "object": "payment_intent", "amount": 1999, "currency": "usd", "status": "succeeded", "created": 1700000000,
			"metadata": {"godwit_idempotency_key": "chk_retry"}}`))
	}))
	t.Cleanup(srv.Close)
	p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: srv.URL, MaxNetworkRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := p.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: "chk_retry", Amount: money.Money{Amount: 1999, Currency: "USD"}, Token: "pm_card_visa"})
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Charge{ID: "pi_retry", IdempotencyKey: "chk_retry", Amount: money.Money{Amount: 1999, Currency: "USD"},
		Status: payment.StatusSucceeded, Refunded: money.Money{Currency: "USD"}, CreatedAt: time.Unix(1700000000, 0).UTC()}
	if diff := cmp.Diff(want, ch); diff != "" {
		t.Errorf("charge (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"chk_retry", "chk_retry"}, keys); diff != "" {
		t.Errorf("Idempotency-Key per attempt (-want +got):\n%s", diff)
	}
}

// TestLookupNotFound: a search miss falls back to listing recent intents and
// only then reports charge_not_found.
func TestLookupNotFound(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/payment_intents/search":
			_, _ = w.Write([]byte(`{"object": "search_result", "data": [], "has_more": false, "url": "/v1/payment_intents/search"}`))
		default:
			_, _ = w.Write([]byte(`{"object": "list", "data": [{"id": "pi_other", "object": "payment_intent", "amount": 5, "currency": "usd",
				"status": "succeeded", "metadata": {"godwit_idempotency_key": "chk_other"}}], "has_more": false, "url": "/v1/payment_intents"}`))
		}
	}))
	t.Cleanup(srv.Close)
	p, err := stripe.New(stripe.Config{SecretKey: testKey, APIBase: srv.URL, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Lookup(context.Background(), "chk_missing")
	if !errs.Is(err, "charge_not_found") || errs.KindOf(err) != errs.NotFound {
		t.Errorf("Lookup = %v, want not_found/charge_not_found", err)
	}
	if diff := cmp.Diff([]string{"/v1/payment_intents/search", "/v1/payment_intents"}, paths); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestLoadSecretKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := dir + "/" + name
		if err := writeFile(path, content); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good", testKey+"\n")
	bad := write("bad", "pk_test_publishable\n")
	cases := []struct {
		name, env, file, want string
		wantErr               bool
	}{
		{name: "env", env: testKey, want: testKey},
		{name: "file", file: good, want: testKey},
		{name: "both", env: testKey, file: good, wantErr: true},
		{name: "neither", wantErr: true},
		{name: "publishable key", file: bad, wantErr: true},
		{name: "missing file", file: dir + "/nope", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stripe.LoadSecretKey(tc.env, tc.file)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("key mismatch")
			}
			if err != nil && (strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "pk_test_publishable")) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
	if _, err := stripe.New(stripe.Config{SecretKey: ""}); err == nil {
		t.Error("New with no key succeeded")
	}
}
