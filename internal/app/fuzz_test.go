package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
)

// fuzzTarget is one value-moving endpoint of the real app, fuzzed by body.
type fuzzTarget struct {
	method, path string
	token        string
	idempotent   bool  // send a fresh Idempotency-Key with each input
	mayWrite     []int // 4xx statuses that legitimately record something (a declined payment)
	// audit lists tables that may gain a row when a request is refused after
	// input validation: the checkout saga records every attempt it started.
	// Validation refusals (failure_step "initiated") must still write nothing.
	audit []string
	seeds [][]byte // valid and near-valid bodies
}

// fuzzEndpoint builds the app once (SQLite, demo data, the scenario world) and
// sends every input to the endpoint. Properties: no 5xx (a panic is a 500),
// every error is a problem document, and a refused (4xx) input writes nothing.
// This is integration fuzzing, a few dozen inputs a second, run for a time
// (docs/reliability.md); the same bodies' decoding and checks are fuzzed by
// the millions by the pure targets FuzzActivityRequest, FuzzRedemptionRequest,
// FuzzTransferRequest (internal/loyalty) and FuzzCheckoutRequest
// (internal/checkout).
func fuzzEndpoint(f *testing.F, pick func(w *world) fuzzTarget) {
	r := newRig(f, rigOptions{cfg: app.Config{Demo: true}})
	w := seedWorld(r)
	tgt := pick(w)
	for _, s := range tgt.seeds {
		f.Add(s)
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"x":1}`, `{"points":-1}`, `{"points":1e999}`, "{\"\xff\":1}"} {
		f.Add([]byte(s))
	}
	client := r.srv.Client()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := http.NewRequest(tgt.method, r.srv.URL+tgt.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if tgt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tgt.token)
		}
		if tgt.idempotent {
			req.Header.Set("Idempotency-Key", nextKey("fuzz"))
		}
		before := fingerprint(t, r.a.DB)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %d %s", tgt.method, tgt.path, body, res.StatusCode, out)
		}
		if res.StatusCode < 400 {
			return
		}
		var p map[string]any
		if json.Unmarshal(out, &p) != nil || p["code"] == nil {
			t.Fatalf("%d without a problem document: %s", res.StatusCode, out)
		}
		if slices.Contains(tgt.mayWrite, res.StatusCode) {
			return
		}
		// The stored answer to an Idempotency-Key is the one allowed record.
		skip := []string{"idempotency_keys"}
		if p["failure_step"] != nil && p["failure_step"] != "initiated" {
			skip = append(skip, tgt.audit...)
		}
		if d := diff(before, fingerprint(t, r.a.DB), skip...); d != "" {
			t.Fatalf("refused with %d %v, yet wrote: %s (body %q)", res.StatusCode, p["code"], d, body)
		}
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzActivityBody fuzzes POST /v1/members/{id}/activities (earning).
func FuzzActivityBody(f *testing.F) {
	fuzzEndpoint(f, func(w *world) fuzzTarget {
		return fuzzTarget{method: "POST", path: "/v1/members/" + w.self + "/activities", token: w.serviceToken,
			seeds: [][]byte{
				mustJSON(flight("fz-1", 1200)),
				[]byte(`{"type":"hotel","external_id":"fz-h","occurred_at":"2026-01-01T10:00:00Z","hotel":{"amount":{"amount":12000,"currency":"USD"},"nights":2}}`),
				[]byte(`{"type":"card_spend","external_id":"fz-c","occurred_at":"2026-01-01T10:00:00Z","card_spend":{"amount":{"amount":-5,"currency":"USD"},"merchant_category":"5411"}}`),
				[]byte(`{"type":"flight","external_id":"fz-2","occurred_at":"9999-12-31T23:59:59Z","flight":{"distance_miles":9223372036854775807,"fare_class":"F","cabin":"first","origin":"JFK","destination":"JFK"}}`),
			}}
	})
}

// FuzzCheckoutBody fuzzes POST /v1/checkout as a guest, on an open guest cart.
func FuzzCheckoutBody(f *testing.F) {
	fuzzEndpoint(f, func(w *world) fuzzTarget {
		return fuzzTarget{method: "POST", path: "/v1/checkout", idempotent: true, mayWrite: []int{402}, audit: []string{"checkouts"},
			seeds: [][]byte{
				mustJSON(map[string]any{"cart_id": w.guestCartID, "payment": map[string]any{"token": "tok_chargeDeclined"}, "email": "fz@example.test"}),
				mustJSON(map[string]any{"cart_id": w.guestCartID, "payment": map[string]any{"token": "tok_visa"}, "email": "Fz <fz@example.test>"}),
				mustJSON(map[string]any{"cart_id": w.guestCartID, "payment": map[string]any{"token": "4111111111111111"}, "email": "fz@example.test"}),
				mustJSON(map[string]any{"cart_id": w.cartID, "payment": map[string]any{"token": "tok_visa"}, "points_to_redeem": 10, "email": "fz@example.test"}),
				mustJSON(map[string]any{"cart_id": "nope", "payment": map[string]any{"token": "tok_visa"}, "email": "fz@example.test"}),
			}}
	})
}

// FuzzRedemptionBody fuzzes POST /v1/members/{id}/redemptions.
func FuzzRedemptionBody(f *testing.F) {
	fuzzEndpoint(f, func(w *world) fuzzTarget {
		seeds := [][]byte{[]byte(`{"option_id":"nope"}`), []byte(`{"option_id":""}`)}
		for _, o := range w.redeemOptions {
			seeds = append(seeds, mustJSON(map[string]any{"option_id": o}))
		}
		return fuzzTarget{method: "POST", path: "/v1/members/" + w.self + "/redemptions", token: w.selfToken, idempotent: true, seeds: seeds}
	})
}

// FuzzTransferBody fuzzes POST /v1/members/{id}/transfers.
func FuzzTransferBody(f *testing.F) {
	fuzzEndpoint(f, func(w *world) fuzzTarget {
		return fuzzTarget{method: "POST", path: "/v1/members/" + w.self + "/transfers", token: w.selfToken, idempotent: true,
			seeds: [][]byte{
				mustJSON(map[string]any{"to_member_id": w.other, "points": 100}),
				mustJSON(map[string]any{"to_member_id": w.self, "points": 100}),
				mustJSON(map[string]any{"partner_id": "northwind-airways", "points": 3000}),
				mustJSON(map[string]any{"partner_id": "northwind-airways", "to_member_id": w.other, "points": 1}),
				mustJSON(map[string]any{"to_member_id": w.other, "points": 9223372036854775807}),
				mustJSON(map[string]any{"to_member_id": w.other}),
			}}
	})
}
