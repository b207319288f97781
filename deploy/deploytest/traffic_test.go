package deploytest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// traffic is what driveTraffic did: the trace id of every request it made, by kind, and the
// secrets it handed the server, which must never come back in telemetry.
type traffic struct {
	fast   []string // successful checkouts under the slow threshold (and a redemption)
	failed []string // declined checkouts
	slow   []string // successful checkouts slowed by injected payment latency
	// secrets are values that must not appear in any attribute.
	secrets []string
}

const (
	memberEmail = "mira.okafor@example.test"
	guestEmail  = "guest.buyer@example.test"
	memberID    = "m-deploy"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func traceID(t *testing.T, what string, body map[string]any) string {
	t.Helper()
	id, _ := body["trace_id"].(string)
	if len(id) != 32 {
		t.Fatalf("%s: no trace id in %v", what, body)
	}
	return id
}

// driveTraffic makes a member earn points and redeem some, then runs checkouts against base:
// two fast ones (a guest's and the member's), two declined ones (tok_chargeDeclined, one of them
// paying partly with points), and, when slowMS > 0, one slowed by slowMS of payment latency
// injected at paymentBase (the process running the payment service).
func driveTraffic(t *testing.T, base, paymentBase, secret string, slowMS int) traffic {
	t.Helper()
	admin := mint(t, secret, "admin", "ops")
	svc := mint(t, secret, "service", "airline")
	member := mint(t, secret, "member", memberID)
	tr := traffic{secrets: []string{memberEmail, guestEmail, admin, svc, member, secret, "tok_visa", "tok_chargeDeclined"}}

	if code, body := call(t, "POST", base+"/v1/members", svc, map[string]any{"id": memberID, "name": "Mira Okafor", "email": memberEmail}); code != 201 {
		t.Fatalf("create member: %d %v", code, body)
	}
	code, body := call(t, "POST", base+"/v1/members/"+memberID+"/activities", svc, map[string]any{
		"type": "flight", "external_id": "PNR-DEPLOY-1", "occurred_at": time.Now().UTC().Format(time.RFC3339),
		"flight": map[string]any{"distance_miles": 14000, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "SYD"},
	})
	if code != 201 {
		t.Fatalf("earn: %d %v", code, body)
	}
	code, body = call(t, "POST", base+"/v1/members/"+memberID+"/redemptions", member, map[string]any{"option_id": "award-domestic-economy"})
	if code != 201 && code != 200 {
		t.Fatalf("redeem: %d %v", code, body)
	}
	tr.fast = append(tr.fast, traceID(t, "redeem", body))

	n := 0
	checkout := func(token, payToken string, points int64, wantCode int) map[string]any {
		t.Helper()
		n++
		code, cart := call(t, "POST", base+"/v1/carts", token, map[string]any{})
		if code != 201 {
			t.Fatalf("create cart: %d %v", code, cart)
		}
		cartID, _ := cart["id"].(string)
		if code, b := call(t, "POST", base+"/v1/carts/"+cartID+"/items", token, map[string]any{"product_id": "prod_demo_adapter", "quantity": 1}); code >= 300 {
			t.Fatalf("add item: %d %v", code, b)
		}
		req := map[string]any{"cart_id": cartID, "payment": map[string]any{"token": payToken}}
		if token == "" {
			req["email"] = guestEmail
		}
		if points > 0 {
			req["points_to_redeem"] = points
		}
		code, out := call(t, "POST", base+"/v1/checkout", token, req, "Idempotency-Key", "deploytest-"+strings.Repeat("x", n))
		if code != wantCode {
			t.Fatalf("checkout %d with %s: %d %v, want %d", n, payToken, code, out, wantCode)
		}
		return out
	}

	tr.fast = append(tr.fast, traceID(t, "guest checkout", checkout("", "tok_visa", 0, 201)))
	tr.fast = append(tr.fast, traceID(t, "member checkout", checkout(member, "tok_visa", 200, 201)))
	declined := checkout(member, "tok_chargeDeclined", 100, 402)
	if declined["code"] != "payment_declined" || declined["failure_step"] != "processing_payment" {
		t.Fatalf("declined checkout answered %v", declined)
	}
	tr.failed = append(tr.failed, traceID(t, "declined checkout", declined))
	tr.failed = append(tr.failed, traceID(t, "declined guest checkout", checkout("", "tok_chargeDeclined", 0, 402)))

	if slowMS > 0 {
		if code, b := call(t, "PUT", paymentBase+"/v1/admin/faults/payment", admin, map[string]any{"latency_ms": slowMS}); code != 200 {
			t.Fatalf("set payment latency: %d %v", code, b)
		}
		tr.slow = append(tr.slow, traceID(t, "slow checkout", checkout("", "tok_visa", 0, 201)))
		if code, b := call(t, "PUT", paymentBase+"/v1/admin/faults/payment", admin, map[string]any{"latency_ms": 0}); code != 200 {
			t.Fatalf("reset payment latency: %d %v", code, b)
		}
	}
	return tr
}
