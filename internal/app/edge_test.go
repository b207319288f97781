package app_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// TestBadTextRefusedBeforeTheDatabase sends a NUL byte and invalid UTF-8 in
// path parameters and JSON strings: PostgreSQL cannot store either (it answered
// 500 and logged the raw bytes), SQLite stored them. Both engines now answer
// 400 invalid_text, change nothing and log nothing at ERROR.
func TestBadTextRefusedBeforeTheDatabase(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			logs := &testlog.Buffer{}
			r := newRig(t, rigOptions{engine: e, logOut: logs, cfg: app.Config{Demo: true}})
			w := seedWorld(r)
			cart := "/v1/carts/" + w.guestCartID
			cases := []struct {
				method, path, token string
				body                []byte
			}{
				{"GET", "/v1/products/abc%00def", "", nil},
				{"GET", "/v1/products/abc%ff", "", nil},
				{"GET", "/v1/carts/abc%00def", "", nil},
				{"GET", "/v1/carts/abc%ff", "", nil},
				{"PUT", cart + "/items/abc%00def", "", []byte(`{"quantity":2}`)},
				{"DELETE", cart + "/items/abc%ff", "", nil},
				{"POST", cart + "/items", "", []byte(`{"product_id":"abc\u0000def","quantity":1}`)},
				{"POST", cart + "/items", "", []byte("{\"product_id\":\"abc\xffdef\",\"quantity\":1}")},
				{"POST", "/v1/checkout", "", []byte(`{"cart_id":"c\u0000","payment":{"token":"tok_visa"},"email":"a@example.test"}`)},
				{"POST", "/v1/members/m-self/transfers", w.selfToken, []byte(`{"to_member_id":"m-oth\u0000er","points":500}`)},
				{"POST", "/v1/members/m-self/transfers", w.selfToken, []byte("{\"to_member_id\":\"m-oth\xffer\",\"points\":10}")},
				{"POST", "/v1/members/m-self/activities", w.serviceToken, mustJSON(flight("pnr\x00x", 100))},
				{"POST", "/v1/members", w.serviceToken, []byte(`{"id":"m-nul","name":"A\u0000B","email":"nul@example.test"}`)},
				{"POST", "/v1/members", w.serviceToken, []byte("{\"id\":\"m-ff\",\"name\":\"A\xc3B\",\"email\":\"ff@example.test\"}")},
				{"GET", "/v1/members/m-self%00/statement", w.adminToken, nil},
			}
			for _, c := range cases {
				before := fingerprint(t, r.a.DB)
				hdr := idem("text")
				code, out, _ := r.raw(c.method, c.path, c.token, c.body, hdr)
				var p map[string]any
				_ = json.Unmarshal(out, &p)
				if code != 400 || p["code"] != httpx.CodeInvalidText {
					t.Errorf("%s %s %q: %d %s, want 400 %s", c.method, c.path, c.body, code, out, httpx.CodeInvalidText)
				}
				if d := diff(before, fingerprint(t, r.a.DB), "idempotency_keys"); d != "" {
					t.Errorf("%s %s %q wrote: %s", c.method, c.path, c.body, d)
				}
			}
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) {
					t.Errorf("logged at ERROR: %s", line)
				}
			}
			requireVerified(t, r.a, 0)
		})
	}
}

// TestInvalidTokensAreRateLimited: a request whose token is refused counts
// against its client address's anonymous limit, so a token-guessing client is
// throttled like any other anonymous one (it used to get 401 for ever).
func TestInvalidTokensAreRateLimited(t *testing.T) {
	r := newRig(t, rigOptions{cfg: app.Config{Demo: true, RateLimits: httpx.RateLimits{
		Anonymous: httpx.Limit{PerSecond: 1, Burst: 5},
	}}})
	tok := r.token("member", "m-self")
	counts := map[int]int{}
	for i := 0; i < 30; i++ {
		code, _, hdr := r.raw("GET", "/v1/members/m-self", tok+"x", nil, nil)
		counts[code]++
		if code == 429 && hdr.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if counts[429] == 0 || counts[401] > 6 {
		t.Errorf("30 requests with a forged token: %v, want 429 after the burst of 5", counts)
	}
}

// TestAPIResponsesAreNotStored: every /v1 answer (personal data included) says
// Cache-Control: no-store; the UI's static assets keep their own caching.
func TestAPIResponsesAreNotStored(t *testing.T) {
	r := newRig(t, rigOptions{cfg: app.Config{Demo: true}})
	w := seedWorld(r)
	for _, c := range []struct{ path, token string }{
		{"/v1/members/m-self", w.selfToken},
		{"/v1/members/m-self/statement", w.selfToken},
		{"/v1/orders/" + w.orderID, w.selfToken},
		{"/v1/members/m-self/orders", w.selfToken},
		{"/v1/carts/" + w.cartID, w.selfToken},
		{"/v1/products", ""},
		{"/v1/admin/checkouts/nope", w.adminToken},
	} {
		code, _, hdr := r.raw("GET", c.path, c.token, nil, nil)
		if cc := hdr.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: %d with Cache-Control %q, want no-store", c.path, code, cc)
		}
	}
	code, out, hdr := r.raw("POST", "/v1/members", w.serviceToken, mustJSON(map[string]any{"id": "m-cc", "name": "C C", "email": "cc@example.test"}), nil)
	if code != 201 || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("POST /v1/members: %d %s, Cache-Control %q", code, bytes.TrimSpace(out), hdr.Get("Cache-Control"))
	}
	if _, _, hdr := r.raw("GET", "/", "", nil, nil); hdr.Get("Cache-Control") == "no-store" {
		t.Errorf("the UI page became no-store")
	}
}
