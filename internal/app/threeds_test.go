package app_test

import (
	"net/url"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TestThreeDSecureOverHTTP runs the 3-D Secure flow through the server as the
// storefront does: a guest's checkout answers 202, the simulated bank page
// (POST /v1/simulator/authenticate) approves or declines, and confirm answers
// the order or 402 with the decline code; a declined one records
// checkout.failed like any failed checkout, and verify stays clean.
func TestThreeDSecureOverHTTP(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: engine, cfg: app.Config{Demo: true}})
			w := seedWorld(r)
			start := func(key string) (id, secret string) {
				cartID := r.cartWith("", w.productID)
				code, body := r.call("POST", "/v1/checkout", "", map[string]any{"cart_id": cartID, "payment": map[string]any{"token": "tok_threeDSecure2Required"},
					"email": "guest@example.test"}, map[string]string{"Idempotency-Key": key})
				if code != 202 {
					t.Fatalf("checkout: %d %v", code, body)
				}
				na := body["next_action"].(map[string]any)["redirect_to_url"].(map[string]any)
				u, err := url.Parse(na["url"].(string))
				if err != nil || u.Query().Get("checkout_id") != body["checkout_id"] {
					t.Fatalf("next_action url %v", na["url"])
				}
				return body["checkout_id"].(string), u.Query().Get("client_secret")
			}

			id, secret := start("3ds-http-ok")
			if code, body := r.call("GET", "/v1/checkout/"+id, "", nil, map[string]string{"Godwit-Client-Secret": secret}); code != 200 || body["status"] != "requires_action" {
				t.Errorf("GET while waiting: %d %v", code, body)
			}
			if code, body := r.call("POST", "/v1/simulator/authenticate", "", map[string]any{"client_secret": secret, "approve": true}, nil); code != 200 || body["status"] != "succeeded" {
				t.Fatalf("authenticate: %d %v", code, body)
			}
			if code, body := r.call("POST", "/v1/simulator/authenticate", "", map[string]any{"client_secret": secret, "approve": true}, nil); code != 409 {
				t.Errorf("second authenticate: %d %v", code, body)
			}
			code, order := r.call("POST", "/v1/checkout/"+id+"/confirm", "", map[string]any{"client_secret": secret}, nil)
			if code != 201 || order["status"] != "confirmed" || order["order_id"] == "" {
				t.Fatalf("confirm: %d %v", code, order)
			}

			id2, secret2 := start("3ds-http-decline")
			if code, body := r.call("POST", "/v1/simulator/authenticate", "", map[string]any{"client_secret": secret2, "approve": false}, nil); code != 200 ||
				body["status"] != "failed" || body["decline_code"] != "payment_intent_authentication_failure" {
				t.Fatalf("decline: %d %v", code, body)
			}
			if code, body := r.call("POST", "/v1/checkout/"+id2+"/confirm", "", map[string]any{"client_secret": secret2}, nil); code != 402 ||
				body["code"] != "payment_declined" || body["decline_code"] != "payment_intent_authentication_failure" {
				t.Fatalf("confirm after decline: %d %v", code, body)
			}
			if code, body := r.call("POST", "/v1/simulator/authenticate", "", map[string]any{"client_secret": "nope_secret_nope", "approve": true}, nil); code != 404 {
				t.Errorf("unknown secret: %d %v", code, body)
			}
			failed := eventstest.OfType(eventstest.All(t, r.a.DB), events.CheckoutFailed)
			if len(failed) != 1 || eventstest.Data[events.CheckoutFailedData](t, failed[0]).CheckoutID != id2 ||
				eventstest.Data[events.CheckoutFailedData](t, failed[0]).Code != "payment_declined" {
				t.Errorf("checkout.failed events %v, want one payment_declined for %s", failed, id2)
			}
			requireVerified(t, r.a, 0)
		})
	}
}
