package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/internal/stripehook"
)

const rigWebhookSecret = "whsec_rig_webhook_secret_0123456789"

// stripeEvent posts a Stripe-shaped event signed with the SDK's test helper.
func (r *rig) stripeEvent(id, typ string, obj map[string]any) (int, map[string]any) {
	r.tb.Helper()
	payload, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": stripeapi.APIVersion,
		"created": time.Now().Unix(), "type": typ, "livemode": false, "data": map[string]any{"object": obj}})
	if err != nil {
		r.tb.Fatal(err)
	}
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: rigWebhookSecret}).Header
	status, body, _ := r.raw("POST", "/v1/webhooks/stripe", "", payload, map[string]string{"Stripe-Signature": sig, "Content-Type": "application/json"})
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return status, m
}

func (r *rig) orderRow(orderID string) (status, chargeID string, charged, refunded int64) {
	r.tb.Helper()
	if err := r.a.DB.Read().QueryRow(`SELECT status, charge_id, charged_amount, refunded_amount FROM orders WHERE id = $1`, orderID).
		Scan(&status, &chargeID, &charged, &refunded); err != nil {
		r.tb.Fatal(err)
	}
	return
}

func (r *rig) balance(member string) int64 {
	r.tb.Helper()
	var b int64
	if err := r.a.DB.Read().QueryRow(`SELECT balance FROM loyalty_members WHERE id = $1`, member).Scan(&b); err != nil {
		r.tb.Fatal(err)
	}
	return b
}

// webhookSpan finds the payment.webhook.process span of an event.
func webhookSpan(t *testing.T, tel *telemetry.Telemetry, eventID string) telemetry.SpanView {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, sum := range tel.Traces.Recent(telemetry.RecentFilter{Limit: 500, SpanName: "payment.webhook.process"}) {
			id, _ := trace.TraceIDFromHex(sum.TraceID)
			view, _ := tel.Traces.Trace(id)
			for _, s := range view.Spans {
				if s.Name == "payment.webhook.process" && s.Attributes["payment.webhook.event_id"] == eventID {
					return s
				}
			}
		}
	}
	t.Fatalf("no payment.webhook.process span for %s", eventID)
	return telemetry.SpanView{}
}

// A refund made in Stripe's dashboard and a lost dispute, delivered as signed
// events to the running app: the order and the points change as a refund
// does, a redelivery changes nothing, the processing span is its own trace
// linked to the checkout's, and verify stays clean.
func TestStripeWebhookRefundAndDisputeThroughTheApp(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: e, cfg: app.Config{Demo: true,
				StripeWebhook: app.StripeWebhookConfig{Secrets: []string{"whsec_retired_secret", rigWebhookSecret}}}})
			w := seedWorld(r)
			before := r.balance(w.self)
			res := r.buy(w.selfToken, w.productID, map[string]any{"payment": map[string]any{"token": "tok_visa"}, "points_to_redeem": 200})
			orderID, checkoutTrace := res["order_id"].(string), res["trace_id"].(string)
			_, charge, charged, _ := r.orderRow(orderID)
			if r.balance(w.self) == before {
				t.Fatal("the purchase changed no points")
			}
			refund := map[string]any{"id": "ch_dash", "object": "charge", "amount": charged, "amount_refunded": charged, "currency": "usd",
				"payment_intent": charge, "status": "succeeded"}
			for i := range 2 {
				status, body := r.stripeEvent("evt_app_refund", "charge.refunded", refund)
				if status != http.StatusOK || body["outcome"] != "refund_applied" || body["duplicate"] != (i == 1) {
					t.Fatalf("delivery %d: %d %v", i, status, body)
				}
			}
			if st, _, _, refunded := r.orderRow(orderID); st != "refunded" || refunded != charged {
				t.Errorf("order %s, refunded %d of %d", st, refunded, charged)
			}
			if got := r.balance(w.self); got != before {
				t.Errorf("balance %d after the dashboard refund, want %d (spent points back, earned reversed)", got, before)
			}
			span := webhookSpan(t, r.tel, "evt_app_refund")
			if span.ParentSpanID != "" || span.TraceID == checkoutTrace {
				t.Errorf("payment.webhook.process is not its own trace: %+v", span)
			}
			linked := false
			for _, l := range span.Links {
				linked = linked || l.TraceID == checkoutTrace
			}
			if !linked {
				t.Errorf("payment.webhook.process links %v, not the checkout's trace %s", span.Links, checkoutTrace)
			}
			if span.Attributes["payment.webhook.outcome"] != "refund_applied" || span.Attributes["payment.charge_id"] != charge {
				t.Errorf("span attributes %v", span.Attributes)
			}

			// A lost dispute on a second order takes back the points it earned.
			res = r.buy(w.selfToken, w.productID, map[string]any{"payment": map[string]any{"token": "tok_visa"}})
			orderID = res["order_id"].(string)
			earned := int64(res["points_earned"].(float64))
			_, charge, charged, _ = r.orderRow(orderID)
			mid := r.balance(w.self)
			dispute := map[string]any{"id": "dp_app", "object": "dispute", "amount": charged, "currency": "usd", "charge": "ch_x",
				"payment_intent": charge, "status": "needs_response"}
			if status, body := r.stripeEvent("evt_app_dp_open", "charge.dispute.created", dispute); status != 200 || body["outcome"] != "recorded" {
				t.Fatalf("dispute opened: %d %v", status, body)
			}
			dispute["status"] = "lost"
			if status, body := r.stripeEvent("evt_app_dp_lost", "charge.dispute.closed", dispute); status != 200 || body["outcome"] != "dispute_lost" {
				t.Fatalf("dispute lost: %d %v", status, body)
			}
			if st, _, _, refunded := r.orderRow(orderID); st != "refunded" || refunded != charged {
				t.Errorf("disputed order %s, refunded %d of %d", st, refunded, charged)
			}
			// The order's points still pend (the purchase's return window): the
			// lost dispute cancels them and leaves the balance alone.
			if got := r.balance(w.self); got != mid {
				t.Errorf("balance %d after the lost dispute, want %d (its %d points were pending)", got, mid, earned)
			}
			// Anyone else's intent: recorded, ignored.
			if status, body := r.stripeEvent("evt_app_other", "payment_intent.succeeded",
				map[string]any{"id": "pi_not_godwits", "object": "payment_intent", "amount": 100, "currency": "usd", "status": "succeeded"}); status != 200 || body["state"] != "ignored" {
				t.Errorf("unknown intent: %d %v", status, body)
			}
			// The simulator's own events (evt_sim_…) are stored beside these.
			events, err := r.a.StripeHook.Events(context.Background(), 100)
			posted := 0
			for _, e := range events {
				if strings.HasPrefix(e.ID, "evt_app_") {
					posted++
				}
			}
			if err != nil || posted != 4 {
				t.Errorf("stored events %v, %v", events, err)
			}
			requireVerified(t, r.a, time.Hour)
		})
	}
}

// threeDS starts a guest's 3-D Secure checkout and returns its id, client
// secret and charge id.
func (r *rig) threeDS(productID, key string) (id, secret, charge string) {
	r.tb.Helper()
	code, body := r.call("POST", "/v1/checkout", "", map[string]any{"cart_id": r.cartWith("", productID),
		"payment": map[string]any{"token": "tok_threeDSecure2Required"}, "email": "guest@example.test"}, map[string]string{"Idempotency-Key": key})
	if code != 202 {
		r.tb.Fatalf("checkout: %d %v", code, body)
	}
	id, secret = body["checkout_id"].(string), body["client_secret"].(string)
	if err := r.a.DB.Read().QueryRow(`SELECT charge_id FROM checkouts WHERE id = $1`, id).Scan(&charge); err != nil || charge == "" {
		r.tb.Fatalf("charge of %s: %q %v", id, charge, err)
	}
	return id, secret, charge
}

func (r *rig) ordersOf(checkoutID string) (n int, id string) {
	r.tb.Helper()
	rows, err := r.a.DB.Read().Query(`SELECT id FROM orders WHERE checkout_id = $1`, checkoutID)
	if err != nil {
		r.tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		n++
		_ = rows.Scan(&id)
	}
	return n, id
}

// waitEvent waits until the simulator's event of a charge and type is no
// longer pending, and returns its outcome.
func (r *rig) waitEvent(charge, typ string) string {
	r.tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var state, outcome string
		err := r.a.DB.Read().QueryRow(`SELECT state, outcome FROM stripe_events WHERE charge_id = $1 AND type = $2`, charge, typ).Scan(&state, &outcome)
		if err == nil && state != "pending" {
			return outcome
		}
	}
	r.tb.Fatalf("no settled %s event for %s", typ, charge)
	return ""
}

// A 3-D Secure checkout completes once whichever of the simulated webhook
// and the client's confirm comes first: the webhook before the confirm,
// the confirm before a delayed webhook, and 20 concurrent deliveries of one
// event beside both. Exactly one order each time; verify clean.
func TestStripeWebhookRacesConfirm(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: e, cfg: app.Config{Demo: true, StripeWebhook: app.StripeWebhookConfig{Secrets: []string{rigWebhookSecret}}}})
			w := seedWorld(r)
			admin := w.adminToken
			authenticate := func(secret string) {
				if code, body := r.call("POST", "/v1/simulator/authenticate", "", map[string]any{"client_secret": secret, "approve": true}, nil); code != 200 {
					t.Fatalf("authenticate: %d %v", code, body)
				}
			}
			confirm := func(id, secret string) string {
				code, body := r.call("POST", "/v1/checkout/"+id+"/confirm", "", map[string]any{"client_secret": secret}, nil)
				if code != 201 {
					t.Fatalf("confirm: %d %v", code, body)
				}
				return body["order_id"].(string)
			}

			// The webhook first: the order exists before the client confirms.
			id, secret, charge := r.threeDS(w.productID, nextKey("wh-first"))
			authenticate(secret)
			if out := r.waitEvent(charge, "payment_intent.succeeded"); out != "settled" {
				t.Fatalf("webhook outcome %s", out)
			}
			n, orderID := r.ordersOf(id)
			if n != 1 {
				t.Fatalf("%d orders after the webhook", n)
			}
			if got := confirm(id, secret); got != orderID {
				t.Errorf("confirm answered order %s, the webhook made %s", got, orderID)
			}

			// The confirm first: the webhook is delayed, arrives after, changes nothing.
			r.must("PUT", "/v1/admin/faults/payment.webhook.delay", admin, map[string]any{"delay_ms": 700}, nil)
			id, secret, charge = r.threeDS(w.productID, nextKey("confirm-first"))
			authenticate(secret)
			orderID = confirm(id, secret)
			if out := r.waitEvent(charge, "payment_intent.succeeded"); out != "settled" {
				t.Fatalf("late webhook outcome %s", out)
			}
			if n, got := r.ordersOf(id); n != 1 || got != orderID {
				t.Errorf("%d orders (%s), want 1 (%s)", n, got, orderID)
			}
			r.must("PUT", "/v1/admin/faults/payment.webhook.delay", admin, map[string]any{"delay_ms": 0}, nil)

			// 20 concurrent deliveries of one Stripe event, racing the
			// simulator's own event and the confirm.
			id, secret, charge = r.threeDS(w.productID, nextKey("dup"))
			authenticate(secret)
			intent := map[string]any{"id": charge, "object": "payment_intent", "amount": 100, "currency": "usd", "status": "succeeded",
				"metadata": map[string]any{"godwit_idempotency_key": id}}
			var wg sync.WaitGroup
			statuses := make(chan int, 21)
			for range 20 {
				wg.Go(func() {
					st, _ := r.stripeEvent("evt_app_dup", "payment_intent.succeeded", intent)
					statuses <- st
				})
			}
			wg.Go(func() {
				code, _ := r.call("POST", "/v1/checkout/"+id+"/confirm", "", map[string]any{"client_secret": secret}, nil)
				statuses <- code
			})
			wg.Wait()
			close(statuses)
			for st := range statuses {
				if st != 200 && st != 201 {
					t.Errorf("a delivery or the confirm answered %d", st)
				}
			}
			var rows int
			if err := r.a.DB.Read().QueryRow(`SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_app_dup'`).Scan(&rows); err != nil || rows != 1 {
				t.Errorf("%d rows for the event (%v)", rows, err)
			}
			// An attempt that found the checkout being settled left the
			// event to the retry job; run it until nothing waits.
			for range 50 {
				if err := r.a.StripeHook.RetryPass(context.Background()); err != nil {
					t.Log(err)
				}
				var pending int
				_ = r.a.DB.Read().QueryRow(`SELECT COUNT(*) FROM stripe_events WHERE state = 'pending'`).Scan(&pending)
				if pending == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n, _ := r.ordersOf(id); n != 1 {
				t.Errorf("%d orders after 20 duplicate deliveries and a confirm", n)
			}
			requireVerified(t, r.a, time.Hour)
		})
	}
}

// A process that dies after storing a webhook and before the order is made
// leaves the event to the retry job, which makes the order exactly once;
// the client's later confirm answers that order. The endpoint here is a
// second stripehook.Service on the app's database and checkout, with the
// test-only crash hook.
func TestStripeWebhookCrashThenRetry(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: e, cfg: app.Config{Demo: true}}) // no secret: no simulated webhooks
			w := seedWorld(r)
			var offset atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			var crashes atomic.Int32
			hook, err := stripehook.New(stripehook.Config{DB: r.a.DB, Secrets: []string{rigWebhookSecret}, Settler: r.a.Checkout, Orders: r.a.Checkout,
				Now: now, FailAfterAccept: func(string) error {
					if crashes.Add(1) == 1 {
						return errors.New("process killed")
					}
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := auth.NewKeys([]byte(rigSecret), nil)
			if err != nil {
				t.Fatal(err)
			}
			api := httpx.NewAPI(keys, nil, nil)
			api.Add(hook.Routes()...)
			srv := httptest.NewServer(api)
			defer srv.Close()

			id, secret, charge := r.threeDS(w.productID, nextKey("crash"))
			if code, body := r.call("POST", "/v1/simulator/authenticate", "", map[string]any{"client_secret": secret, "approve": true}, nil); code != 200 {
				t.Fatalf("authenticate: %d %v", code, body)
			}
			payload, _ := json.Marshal(map[string]any{"id": "evt_crash", "object": "event", "api_version": stripeapi.APIVersion, "created": time.Now().Unix(),
				"type": "payment_intent.succeeded", "data": map[string]any{"object": map[string]any{"id": charge, "object": "payment_intent",
					"status": "succeeded", "metadata": map[string]any{"godwit_idempotency_key": id}}}})
			req, _ := http.NewRequest("POST", srv.URL+"/v1/webhooks/stripe", bytes.NewReader(payload))
			req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: rigWebhookSecret}).Header)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 500 {
				t.Fatalf("crashed delivery answered %d", res.StatusCode)
			}
			if n, _ := r.ordersOf(id); n != 0 {
				t.Fatalf("%d orders after the crash", n)
			}
			if err := hook.RetryPass(context.Background()); err != nil { // the dead attempt's claim still runs
				t.Fatal(err)
			}
			if n, _ := r.ordersOf(id); n != 0 {
				t.Fatalf("the retry ran within the dead attempt's claim")
			}
			offset.Store(int64(stripehook.DefaultClaim + time.Second))
			for range 3 {
				if err := hook.RetryPass(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			n, orderID := r.ordersOf(id)
			if n != 1 {
				t.Fatalf("%d orders after the retry job", n)
			}
			if got := crashes.Load(); got != 2 {
				t.Errorf("%d attempts, want 2 (the crashed one and the retry)", got)
			}
			code, body := r.call("POST", "/v1/checkout/"+id+"/confirm", "", map[string]any{"client_secret": secret}, nil)
			if code != 201 || body["order_id"] != orderID {
				t.Errorf("confirm after the retry: %d %v (order %s)", code, body, orderID)
			}
			requireVerified(t, r.a, time.Hour)
		})
	}
}
