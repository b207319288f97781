package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// TestEveryCatalogueEventFromItsFlow drives the wired server through the
// flows of the catalogue — enrol, earn to a tier upgrade, transfer, redeem,
// check out with points, a declined checkout, a full refund, expiry — with
// a webhook subscription to every type made through the admin API. Every
// event is written by its flow, matches its JSON Schema, carries the trace
// context of its request, and reaches the subscriber signed, once.
func TestEveryCatalogueEventFromItsFlow(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			dsn := dbtest.DSN(t, engine)
			a, err := app.New(ctx, app.Config{DSN: dsn, DataDir: t.TempDir(), Secret: []byte("0123456789abcdef0123456789abcdef"),
				Telemetry: tel, Demo: true, Webhooks: app.WebhookConfig{AllowPrivate: true}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			srv := apitest.Server(t, a.Handler)
			t.Cleanup(srv.Close)
			c := client{t: t, base: srv.URL}
			admin := mint(t, a, auth.ScopeAdmin, "ops")
			svc := mint(t, a, auth.ScopeService, "airline")

			// The subscriber: verifies each delivery's signature, keeps the events.
			var (
				mu     sync.Mutex
				secret string
				got    = map[string]int{}
				bodies [][]byte
			)
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				wh, err := standardwebhooks.NewWebhook(secret)
				if err == nil {
					err = wh.Verify(body, r.Header)
				}
				if err != nil {
					t.Errorf("delivery refused by the verifier: %v", err)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				got[r.Header.Get("webhook-id")]++
				bodies = append(bodies, body)
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(recv.Close)
			code, sub := c.call("POST", "/v1/admin/webhook-subscriptions", admin, map[string]any{"url": recv.URL, "event_types": events.Types}, nil)
			if code != http.StatusCreated {
				t.Fatalf("subscribe: %d %v", code, sub)
			}
			mu.Lock()
			secret, _ = sub["secret"].(string)
			mu.Unlock()

			// The flows.
			for _, id := range []string{"ev-a", "ev-b"} {
				if code, body := c.call("POST", "/v1/members", svc, map[string]any{"id": id, "name": "Eve", "email": id + "@example.test"}, nil); code != 201 {
					t.Fatalf("create member: %d %v", code, body)
				}
			}
			now := time.Now().UTC().Format(time.RFC3339)
			for i, miles := range []int{30000, 2000} {
				code, body := c.call("POST", "/v1/members/ev-a/activities", svc, map[string]any{
					"type": "flight", "external_id": "PNR-" + string(rune('1'+i)), "occurred_at": now,
					"flight": map[string]any{"distance_miles": miles, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "LAX"},
				}, nil)
				if code != 201 {
					t.Fatalf("earn: %d %v", code, body)
				}
			}
			member := mint(t, a, auth.ScopeMember, "ev-a")
			if code, body := c.call("POST", "/v1/members/ev-a/transfers", member, map[string]any{"to_member_id": "ev-b", "points": 1000}, nil); code != 201 {
				t.Fatalf("transfer: %d %v", code, body)
			}
			if code, body := c.call("POST", "/v1/members/ev-a/redemptions", member, map[string]any{"option_id": "merch-luggage-tag"}, nil); code != 201 {
				t.Fatalf("redeem: %d %v", code, body)
			}
			_, products := c.call("GET", "/v1/products", "", nil, nil)
			product := products["products"].([]any)[0].(map[string]any)
			checkout := func(key, token string) (int, map[string]any) {
				_, cart := c.call("POST", "/v1/carts", member, map[string]any{}, nil)
				cartID := cart["id"].(string)
				if code, body := c.call("POST", "/v1/carts/"+cartID+"/items", member, map[string]any{"product_id": product["id"], "quantity": 1}, nil); code >= 300 {
					t.Fatalf("add item: %d %v", code, body)
				}
				return c.call("POST", "/v1/checkout", member, map[string]any{"cart_id": cartID, "payment": map[string]any{"token": token}, "points_to_redeem": 500},
					map[string]string{"Idempotency-Key": key})
			}
			code, order := checkout("ev-co-1", "tok_visa")
			if code != 201 {
				t.Fatalf("checkout: %d %v", code, order)
			}
			if code, body := checkout("ev-co-2", "tok_chargeDeclined"); code != http.StatusPaymentRequired {
				t.Fatalf("declined checkout: %d %v", code, body)
			}
			if code, body := c.call("POST", "/v1/orders/"+order["order_id"].(string)+"/refund", svc, map[string]any{"reason": "returned"},
				map[string]string{"Idempotency-Key": "ev-refund-1"}); code != 200 && code != 201 {
				t.Fatalf("refund: %d %v", code, body)
			}
			// The refund cancelled the order's points while they pended (no
			// points.reversed); a cancelled flight's vested points are reversed.
			code, cancelled := c.call("POST", "/v1/members/ev-a/activities", svc, map[string]any{
				"type": "flight", "external_id": "PNR-9", "occurred_at": now,
				"flight": map[string]any{"distance_miles": 500, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "BOS"},
			}, nil)
			if code != 201 {
				t.Fatalf("earn: %d %v", code, cancelled)
			}
			if code, body := c.call("POST", "/v1/admin/transactions/"+cancelled["transaction_id"].(string)+"/reversal", admin,
				map[string]any{"reason": "flight cancelled"}, nil); code != 200 && code != 201 {
				t.Fatalf("reversal: %d %v", code, body)
			}
			// With warnings on, the members' points (inactivity policy, 24
			// months) are warned about 30 days ahead, then expire.
			a.Loyalty.Program().Expiry.WarningDays = 30
			if rep, err := a.Loyalty.WarnExpiring(ctx, program.AddMonths(time.Now(), 24).AddDate(0, 0, -10)); err != nil || rep.LotsWarned == 0 {
				t.Fatalf("expiry warnings: %+v %v", rep, err)
			}
			if _, err := a.Loyalty.ExpireBatch(ctx, loyalty.ExpireOptions{Now: time.Now().AddDate(5, 0, 0)}); err != nil {
				t.Fatal(err)
			}

			// Every event is valid, traced, and of the flow that wrote it.
			d, err := db.Open(ctx, dsn, db.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			evs := eventstest.All(t, d)
			for _, typ := range events.Types {
				n := len(eventstest.OfType(evs, typ))
				switch typ {
				case events.WebhookDisabled:
					// Not caused by these flows (webhooks_test covers the latter).
				default:
					if n == 0 {
						t.Errorf("no %s event", typ)
					}
				}
			}
			for _, e := range evs {
				// Expiry ran without a request here, and the demo members
				// were enrolled at start-up.
				seeded := e.Type == events.MemberCreated && e.Subject != "ev-a" && e.Subject != "ev-b"
				if e.TraceParent == "" && e.Type != events.PointsExpired && !seeded {
					t.Errorf("event %s (%s) has no trace context", e.ID, e.Type)
				}
			}
			failed := eventstest.OfType(evs, events.CheckoutFailed)
			if len(failed) != 1 || eventstest.Data[events.CheckoutFailedData](t, failed[0]).Code != "payment_declined" {
				t.Errorf("checkout.failed events %v, want one payment_declined", failed)
			}

			// And every one reaches the subscriber once, signed.
			for range 5 {
				if _, err := a.Webhooks.Fanout(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Webhooks.DeliverDue(ctx); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range evs {
				if got[e.ID] != 1 {
					t.Errorf("event %s (%s) delivered %d times", e.ID, e.Type, got[e.ID])
				}
			}
			for _, b := range bodies {
				var e events.Event
				if err := json.Unmarshal(b, &e); err != nil {
					t.Fatalf("delivered body: %v", err)
				}
				if err := eventstest.Validate(e); err != nil {
					t.Errorf("delivered %s: %v", e.Type, err)
				}
			}
			// The delivery log answers through the API.
			code, log := c.call("GET", "/v1/admin/webhook-subscriptions/"+sub["id"].(string)+"/deliveries?state=delivered&limit=500", admin, nil, nil)
			if ds, _ := log["deliveries"].([]any); code != 200 || len(ds) != len(evs) {
				t.Errorf("delivery log: %d, %d entries for %d events", code, len(ds), len(evs))
			}
		})
	}
}
