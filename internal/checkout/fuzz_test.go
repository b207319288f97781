package checkout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/cardnum"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// fzCaller is the caller of a fuzzed checkout, by the fuzzer's byte: a guest,
// a member or a service token (never allowed to check out).
func fzCaller(who byte) *auth.Principal {
	switch who % 3 {
	case 1:
		return &auth.Principal{Scope: auth.ScopeMember, Subject: "m-fuzz"}
	case 2:
		return &auth.Principal{Scope: auth.ScopeService, Subject: "fuzz"}
	}
	return nil
}

// fzCheckout runs decodeCheckout on a POST /v1/checkout as the API hands it
// to the handler: a JSON content type, the route's body limit, the caller in
// the context and an Idempotency-Key.
func fzCheckout(body []byte, p *auth.Principal, key string) (Request, error) {
	r := httptest.NewRequest("POST", "/v1/checkout", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", key)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxCheckoutBody)
	if p != nil {
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
	}
	return decodeCheckout(r)
}

// fzRefusal asserts err is a typed refusal with a 4xx status, a code and
// failure_step "initiated", and summarises it for comparing two refusals.
func fzRefusal(t *testing.T, err error, body []byte) string {
	t.Helper()
	e, ok := errs.As(err)
	if !ok {
		t.Fatalf("untyped error %v for %q", err, body)
	}
	if st := httpx.StatusOf(err); st < 400 || st > 499 || e.Code == "" || e.Code == string(errs.Internal) {
		t.Fatalf("status %d code %q (%v) for %q", st, e.Code, err, body)
	}
	if e.Details["failure_step"] != StepInitiated {
		t.Fatalf("refusal %s without failure_step %q: %v for %q", e.Code, StepInitiated, e.Details, body)
	}
	return fmt.Sprintf("%s|%s|%s|%v", e.Kind, e.Code, e.Message, e.Details)
}

// FuzzCheckoutRequest feeds arbitrary bodies, callers and keys through
// decodeCheckout, all a checkout does before the database. A checkout is
// accepted only from a guest or a member token, with a cart id of 1–100
// bytes, a provider token (payment.ValidateToken), points to redeem not
// negative and only for members, a guest's email required, and an email
// that is a plain address of at most 254 bytes which parses back to itself
// (what the confirmation is sent to); its text storable and free of card
// numbers; its id ID(the caller's actor, key). Every refusal is a typed 4xx
// error naming failure_step "initiated". The same request gives the same
// answer, and an accepted checkout, written back as a body, is accepted as
// itself.
func FuzzCheckoutRequest(f *testing.F) {
	for _, s := range []struct {
		body string
		who  byte
	}{
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"email":"fz@example.test"}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"tok_chargeDeclined"},"email":" Fz <fz@example.test> "}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"email":"<fz@example.test>"}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"email":"\"fz\"@example.test"}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"4111111111111111"},"email":"fz@example.test"}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"points_to_redeem":10,"email":"fz@example.test"}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"points_to_redeem":10}`, 1},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"points_to_redeem":-1}`, 1},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"}}`, 2},
		{`{"cart_id":"","payment":{"token":"tok_visa"},"email":"fz@example.test"}`, 0},
		{`{"cart_id":"c-1","payment":{"token":"tok_visa"},"email":"fz@example.test","x":1}`, 0},
		{`{"cart_id":"\u0034111111111111111","payment":{"token":"tok_visa"},"email":"fz@example.test"}`, 0},
		{``, 0}, {`{}`, 1}, {`null`, 0}, {`[]`, 0}, {`{"points_to_redeem":1e999}`, 1}, {"{\"\xff\":1}", 0},
	} {
		f.Add([]byte(s.body), s.who, "k-1")
	}
	f.Fuzz(func(t *testing.T, body []byte, who byte, key string) {
		p := fzCaller(who)
		req, err := fzCheckout(body, p, key)
		req2, err2 := fzCheckout(body, p, key)
		if (err == nil) != (err2 == nil) || req != req2 {
			t.Fatalf("two answers for %q: %+v %v / %+v %v", body, req, err, req2, err2)
		}
		if err != nil {
			if fzRefusal(t, err, body) != fzRefusal(t, err2, body) {
				t.Fatalf("two refusals for %q: %v / %v", body, err, err2)
			}
			return
		}
		switch {
		case p == nil:
			if req.MemberID != "" || req.PointsToRedeem != 0 || req.Email == "" {
				t.Fatalf("a guest's checkout accepted as %+v: %q", req, body)
			}
		case p.Scope == auth.ScopeMember:
			if req.MemberID != p.Subject || req.PointsToRedeem < 0 {
				t.Fatalf("a member's checkout accepted as %+v: %q", req, body)
			}
		default:
			t.Fatalf("a %s token's checkout accepted: %q", p.Scope, body)
		}
		if req.CartID == "" || len(req.CartID) > 100 || payment.ValidateToken(req.PaymentToken) != nil {
			t.Fatalf("accepted cart %q, token %q: %q", req.CartID, req.PaymentToken, body)
		}
		if req.Email != "" {
			a, err := mail.ParseAddress(req.Email)
			if err != nil || a.Name != "" || a.Address != req.Email || len(req.Email) > 254 || !strings.Contains(req.Email, "@") {
				t.Fatalf("accepted email %q, which parses as %v (%v): %q", req.Email, a, err, body)
			}
		}
		for _, s := range []string{req.CartID, req.Email, req.PaymentToken} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || cardnum.Contains(s) {
				t.Fatalf("accepted %q: not storable or a card number: %q", s, body)
			}
		}
		if req.CheckoutID != ID(p.Actor(), key) {
			t.Fatalf("checkout id %q for %s and key %q", req.CheckoutID, p.Actor(), key)
		}
		var b checkoutBody
		b.CartID, b.Payment.Token, b.PointsToRedeem, b.Email = req.CartID, req.PaymentToken, req.PointsToRedeem, req.Email
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if req3, err := fzCheckout(again, p, key); err != nil || req3 != req {
			t.Fatalf("accepted %q as %+v; written back as %s: %+v %v", body, req, again, req3, err)
		}
	})
}
