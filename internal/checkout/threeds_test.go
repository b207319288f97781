package checkout_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// waiting is a checkout answered 202: what the client got.
type waiting struct {
	id, secret string
	expires    time.Time
}

// startWaiting checks out with tok_threeDSecure2Required and checks the 202.
func (f *fixture) startWaiting(t *testing.T, tok, key, body string) waiting {
	t.Helper()
	r, h := f.doHeader(t, "POST", "/v1/checkout", tok, key, body)
	if r.status != 202 || r.str("status") != "requires_action" || h.Get("Retry-After") == "" {
		t.Fatalf("checkout needing authentication: %d %s (Retry-After %q)", r.status, r.raw, h.Get("Retry-After"))
	}
	w := waiting{id: r.str("checkout_id"), secret: r.str("client_secret")}
	var err error
	if w.expires, err = time.Parse(time.RFC3339, r.str("expires_at")); err != nil {
		t.Fatalf("expires_at %q: %v", r.str("expires_at"), err)
	}
	if want := f.clock.Now().Add(checkout.DefaultAuthenticationWindow); !w.expires.Equal(want) {
		t.Errorf("expires_at = %v, want %v (the default window)", w.expires, want)
	}
	na, _ := r.body["next_action"].(map[string]any)
	redirect, _ := na["redirect_to_url"].(map[string]any)
	u, err := url.Parse(func() string { s, _ := redirect["url"].(string); return s }())
	if err != nil || na["type"] != "redirect_to_url" || u.Path != "/authenticate.html" || u.Query().Get("client_secret") != w.secret || u.Query().Get("checkout_id") != w.id {
		t.Errorf("next_action = %v", r.body["next_action"])
	}
	if !strings.HasPrefix(w.id, "co_") || w.secret == "" {
		t.Fatalf("202 body = %s", r.raw)
	}
	return w
}

func (f *fixture) confirm(t *testing.T, tok string, w waiting) resp {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"client_secret": w.secret})
	if tok != "" {
		b = nil
	}
	return f.do(t, "POST", "/v1/checkout/"+w.id+"/confirm", tok, "", string(b))
}

// TestThreeDSecureConfirm: a member's checkout whose card asks for 3-D Secure
// answers 202 and keeps the stock and points held; before the customer
// authenticates, confirm and a retried POST answer the same 202; after it,
// confirm makes the one order, and a repeated confirm or a retried POST with
// the same Idempotency-Key answer that order. A tok_visa checkout still
// answers 201 at once.
func TestThreeDSecureConfirm(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "3DS-1", 2000, 5)
		member := "mem_3ds"
		tok := f.token(t, auth.ScopeMember, member)
		cartID := f.cart(t, member, map[string]int64{p.ID: 2})
		f.loyalty.setBalance(member, 1000)
		body := checkoutBody(cartID, payment.TokenThreeDSecure, "m@example.com", 500)

		w := f.startWaiting(t, tok, "3ds-key", body)
		if got := f.available(t, p.ID); got != 3 {
			t.Errorf("available while waiting = %d, want 3 (2 reserved)", got)
		}
		if got := f.loyalty.heldPoints(); got != 500 {
			t.Errorf("points held while waiting = %d, want 500", got)
		}
		if problems, err := f.checkout.Verify(context.Background(), 0); err != nil || len(problems) != 0 {
			t.Errorf("verify while waiting = %q, %v", problems, err)
		}
		if again, _ := f.doHeader(t, "POST", "/v1/checkout", tok, "3ds-key", body); again.status != 202 || again.str("checkout_id") != w.id {
			t.Errorf("retried POST while waiting: %d %s", again.status, again.raw)
		}
		if r := f.confirm(t, tok, w); r.status != 202 {
			t.Errorf("confirm before authentication: %d %s", r.status, r.raw)
		}
		if v := f.do(t, "GET", "/v1/checkout/"+w.id, tok, "", ""); v.status != 200 || v.str("status") != "requires_action" || v.str("expires_at") == "" {
			t.Errorf("GET while waiting: %d %s", v.status, v.raw)
		}

		if _, err := f.sim.Authenticate(context.Background(), w.secret, true); err != nil {
			t.Fatal(err)
		}
		done := f.confirm(t, tok, w)
		if done.status != 201 || done.str("status") != "confirmed" || done.str("order_id") == "" || done.str("checkout_id") != w.id {
			t.Fatalf("confirm after authentication: %d %s", done.status, done.raw)
		}
		if again := f.confirm(t, tok, w); again.status != 201 || again.str("order_id") != done.str("order_id") {
			t.Errorf("repeated confirm: %d %s", again.status, again.raw)
		}
		if again := f.do(t, "POST", "/v1/checkout", tok, "3ds-key", body); again.status != 201 || again.str("order_id") != done.str("order_id") {
			t.Errorf("retried POST after the order: %d %s", again.status, again.raw)
		}
		if v := f.do(t, "GET", "/v1/checkout/"+w.id, tok, "", ""); v.status != 200 || v.str("status") != "completed" || v.str("order_id") != done.str("order_id") {
			t.Errorf("GET after the order: %d %s", v.status, v.raw)
		}
		if n := f.count(t, `SELECT COUNT(*) FROM orders WHERE checkout_id = $1 AND status = 'confirmed'`, w.id); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		// 2 × 20.00 − 5.00 in points = 35.00 charged → 35 points earned.
		if got := f.loyalty.pointsEarned(member); got != 1000-500+35 { // balance plus the purchase points pending
			t.Errorf("balance = %d, want %d", got, 1000-500+35)
		}
		if got := f.available(t, p.ID); got != 3 {
			t.Errorf("available = %d, want 3", got)
		}
		// Someone else's token sees nothing.
		if r := f.do(t, "GET", "/v1/checkout/"+w.id, f.token(t, auth.ScopeMember, "mem_other"), "", ""); r.status != 404 {
			t.Errorf("GET by another member: %d", r.status)
		}

		visa := f.do(t, "POST", "/v1/checkout", tok, "visa-key", checkoutBody(f.cart(t, member, map[string]int64{p.ID: 1}), payment.TokenVisa, "", 0))
		if visa.status != 201 || visa.str("status") != "confirmed" {
			t.Errorf("tok_visa checkout: %d %s", visa.status, visa.raw)
		}
		f.assertConsistent(t)
	})
}

// TestThreeDSecureDeclined: a guest whose authentication fails gets 402
// payment_declined with Stripe's decline code; the stock, the cart and the
// charge are released, and the answer repeats.
func TestThreeDSecureDeclined(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "3DS-2", 1500, 4)
		cartID := f.cart(t, "", map[string]int64{p.ID: 3})
		w := f.startWaiting(t, "", "guest-3ds", checkoutBody(cartID, payment.TokenThreeDSecure, "g@example.com", 0))

		if r := f.do(t, "GET", "/v1/checkout/"+w.id, "", "", ""); r.status != 400 {
			t.Errorf("GET without a secret: %d %s", r.status, r.raw)
		}
		if r := f.confirm(t, "", waiting{id: w.id, secret: "pi_wrong_secret_x"}); r.status != 404 {
			t.Errorf("confirm with a wrong secret: %d %s", r.status, r.raw)
		}
		if _, err := f.sim.Authenticate(context.Background(), w.secret, false); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			r := f.confirm(t, "", w)
			if r.status != 402 || r.str("code") != "payment_declined" || r.str("decline_code") != payment.DeclineAuthenticationFailed {
				t.Errorf("confirm %d after a declined authentication: %d %s", i, r.status, r.raw)
			}
		}
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/checkout/"+w.id, nil)
		req.Header.Set("Godwit-Client-Secret", w.secret)
		if res, err := f.srv.Client().Do(req); err != nil {
			t.Error(err)
		} else {
			var v map[string]any
			_ = json.NewDecoder(res.Body).Decode(&v)
			res.Body.Close()
			if res.StatusCode != 200 || v["status"] != "failed" || v["failure_code"] != "payment_declined" || v["decline_code"] != payment.DeclineAuthenticationFailed {
				t.Errorf("guest GET after the decline: %d %v", res.StatusCode, v)
			}
		}
		if got := f.available(t, p.ID); got != 4 {
			t.Errorf("available = %d, want 4 (released)", got)
		}
		if n := f.count(t, `SELECT COUNT(*) FROM carts WHERE id = $1 AND checkout_id = ''`, cartID); n != 1 {
			t.Error("the cart is still held by the failed checkout")
		}
		if n := f.count(t, `SELECT COUNT(*) FROM cart_items WHERE cart_id = $1`, cartID); n != 1 {
			t.Errorf("cart lines = %d, want 1 (kept)", n)
		}
		if n := f.count(t, `SELECT COUNT(*) FROM orders`); n != 0 {
			t.Errorf("%d orders", n)
		}
		f.assertConsistent(t)
	})
}

// TestThreeDSecureAbandoned: a checkout left waiting is in flight (verify
// clean) until its window ends; then the recovery pass cancels the charge and
// releases the stock and points, and a late confirm answers 409
// authentication_expired.
func TestThreeDSecureAbandoned(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "3DS-3", 1000, 2)
		member := "mem_gone"
		tok := f.token(t, auth.ScopeMember, member)
		cartID := f.cart(t, member, map[string]int64{p.ID: 2})
		f.loyalty.setBalance(member, 300)
		w := f.startWaiting(t, tok, "gone", checkoutBody(cartID, payment.TokenThreeDSecure, "", 300))

		f.clock.Advance(checkout.DefaultAuthenticationWindow - time.Second)
		if rep, err := f.checkout.Recover(context.Background()); err != nil || rep.Checked != 0 {
			t.Fatalf("recover inside the window = %+v, %v", rep, err)
		}
		if problems, err := f.checkout.Verify(context.Background(), 0); err != nil || len(problems) != 0 {
			t.Errorf("verify inside the window = %q, %v", problems, err)
		}
		lines, _, err := f.checkout.InFlight(context.Background(), 0)
		if err != nil || len(lines) != 1 || !strings.Contains(lines[0], w.id) {
			t.Errorf("in flight = %q, %v", lines, err)
		}
		f.clock.Advance(2 * time.Second)
		rep, err := f.checkout.Recover(context.Background())
		if err != nil || rep.Checked != 1 || rep.Compensated != 1 {
			t.Fatalf("recover after the window = %+v, %v", rep, err)
		}
		if n := f.count(t, `SELECT COUNT(*) FROM payment_charges WHERE idempotency_key = $1 AND status = 'voided'`, w.id); n != 1 {
			t.Error("the waiting charge was not cancelled")
		}
		if got := f.available(t, p.ID); got != 2 {
			t.Errorf("available = %d, want 2", got)
		}
		if got := f.loyalty.Balance(member); got != 300 {
			t.Errorf("balance = %d, want 300", got)
		}
		if r := f.confirm(t, tok, w); r.status != 409 || r.str("code") != checkout.CodeAuthenticationExpired {
			t.Errorf("confirm after the window: %d %s", r.status, r.raw)
		}
		if _, err := f.sim.Authenticate(context.Background(), w.secret, true); err == nil {
			t.Error("a cancelled charge could still be authenticated")
		}
		f.assertConsistent(t)
	})
}

// TestThreeDSecureSettleRace: after the customer authenticated, 40 settlers
// race — confirms over HTTP, SettleCharge as the webhook would, and recovery
// passes (the window has just ended) — and exactly one order results, which
// every settler that answered 201 names.
func TestThreeDSecureSettleRace(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "3DS-4", 1200, 10)
		member := "mem_race"
		tok := f.token(t, auth.ScopeMember, member)
		w := f.startWaiting(t, tok, "race", checkoutBody(f.cart(t, member, map[string]int64{p.ID: 1}), payment.TokenThreeDSecure, "", 0))
		ch, err := f.sim.Authenticate(context.Background(), w.secret, true)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(checkout.DefaultAuthenticationWindow) // recovery may settle it too
		var wg sync.WaitGroup
		var mu sync.Mutex
		orders := map[string]int{}
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch i % 4 {
				case 0, 1:
					r := f.confirm(t, tok, w)
					switch {
					case r.status == 201:
						mu.Lock()
						orders[r.str("order_id")]++
						mu.Unlock()
					case r.status == 409 && r.str("code") == checkout.CodeCheckoutInProgress:
					default:
						t.Errorf("confirm: %d %s", r.status, r.raw)
					}
				case 2:
					if found, err := f.checkout.SettleCharge(context.Background(), ch.ID); !found || (err != nil && !strings.Contains(err.Error(), "still being processed")) {
						t.Errorf("SettleCharge = %v, %v", found, err)
					}
				default:
					if _, err := f.checkout.Recover(context.Background()); err != nil {
						t.Errorf("recover: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		if len(orders) > 1 {
			t.Errorf("confirms named %d different orders: %v", len(orders), orders)
		}
		final := f.confirm(t, tok, w)
		if final.status != 201 {
			t.Fatalf("confirm after the race: %d %s", final.status, final.raw)
		}
		for id := range orders {
			if id != final.str("order_id") {
				t.Errorf("a confirm answered order %s, the checkout has %s", id, final.str("order_id"))
			}
		}
		if n := f.count(t, `SELECT COUNT(*) FROM orders WHERE checkout_id = $1`, w.id); n != 1 {
			t.Errorf("%d orders, want exactly 1", n)
		}
		if found, err := f.checkout.SettleCharge(context.Background(), "pi_unknown"); found || err != nil {
			t.Errorf("SettleCharge(unknown) = %v, %v", found, err)
		}
		f.assertConsistent(t)
	})
}

// TestThreeDSecureCrashWhileSettling: the process settling an authenticated
// checkout dies after taking it (its lease held, the order maybe made); the
// recovery pass completes it exactly once, and a later confirm answers the
// order.
func TestThreeDSecureCrashWhileSettling(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "3DS-5", 900, 10)
		member := "mem_crash"
		tok := f.token(t, auth.ScopeMember, member)
		for _, point := range []string{checkout.StepCreatingOrder, checkout.StepFinishing} {
			t.Run(point, func(t *testing.T) {
				w := f.startWaiting(t, tok, "crash-"+point, checkoutBody(f.cart(t, member, map[string]int64{p.ID: 1}), payment.TokenThreeDSecure, "m@example.com", 0))
				if _, err := f.sim.Authenticate(context.Background(), w.secret, true); err != nil {
					t.Fatal(err)
				}
				f.setFail(func(s string) error {
					if s == point {
						return errors.New("injected crash")
					}
					return nil
				})
				if r := f.confirm(t, tok, w); r.status != 503 {
					t.Fatalf("confirm that crashed: %d %s", r.status, r.raw)
				}
				f.setFail(nil)
				if n := f.count(t, `SELECT COUNT(*) FROM checkouts WHERE id = $1 AND state = 'in_progress'`, w.id); n != 1 {
					t.Fatal("the crashed settle did not leave the checkout in progress")
				}
				f.clock.Advance(2*checkout.DefaultLease + time.Second)
				rep, err := f.checkout.Recover(context.Background())
				if err != nil || rep.Completed != 1 {
					t.Fatalf("recover = %+v, %v", rep, err)
				}
				if rep, err := f.checkout.Recover(context.Background()); err != nil || rep.Checked != 0 {
					t.Errorf("second recover = %+v, %v", rep, err)
				}
				r := f.confirm(t, tok, w)
				if r.status != 201 || r.str("order_id") == "" {
					t.Fatalf("confirm after recovery: %d %s", r.status, r.raw)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM orders WHERE checkout_id = $1 AND status = 'confirmed'`, w.id); n != 1 {
					t.Errorf("%d confirmed orders, want 1", n)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation' AND reference = $1`, r.str("order_id")); n != 1 {
					t.Errorf("%d confirmations, want 1", n)
				}
				f.assertConsistent(t)
			})
		}
	})
}
