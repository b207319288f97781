package checkout_test

import (
	"errors"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TestRetryTakesOverCrashedCheckout stops the saga after each step as if its
// process died (nothing compensated, the lease no longer renewed), lets one
// lease pass and retries with the same Idempotency-Key: the retry takes the
// checkout over and finishes it — 201 with the order, one charge, one order —
// where before it answered checkout_in_progress until the recovery pass had
// undone it (checkout_aborted).
func TestRetryTakesOverCrashedCheckout(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "TAKE-1", 1500, 100)
		member := "mem_take"
		f.loyalty.setBalance(member, 10_000)
		tok := f.token(t, auth.ScopeMember, member)
		points := append([]string{}, checkout.Steps...)
		if o.local {
			points = append(points, checkout.AfterCommitBeforePayment, checkout.AfterCommitComplete)
		}
		for _, point := range points {
			t.Run(point, func(t *testing.T) {
				f.setFail(func(s string) error {
					if s == point {
						return errors.New("injected crash")
					}
					return nil
				})
				key := "take-" + point
				id := checkout.ID((&auth.Principal{Scope: auth.ScopeMember, Subject: member}).Actor(), key)
				body := checkoutBody(f.cart(t, member, map[string]int64{p.ID: 2}), "tok_visa", "m@example.com", 500)
				if r := f.do(t, "POST", "/v1/checkout", tok, key, body); r.status != 503 && point != checkout.AfterCommitComplete {
					t.Fatalf("crash response: %d %s", r.status, r.raw)
				}
				f.setFail(nil)
				f.clock.Advance(checkout.DefaultLease + time.Second) // the crashed process's lease runs out
				again := f.do(t, "POST", "/v1/checkout", tok, key, body)
				if again.status != 201 || again.str("status") != "confirmed" || again.str("order_id") == "" {
					t.Fatalf("retry after the crash: %d %s", again.status, again.raw)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM payment_charges WHERE idempotency_key = $1`, id); n != 1 {
					t.Errorf("%d charges for the checkout, want 1", n)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM orders WHERE checkout_id = $1 AND status = 'confirmed'`, id); n != 1 {
					t.Errorf("%d confirmed orders for the checkout, want 1", n)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation' AND reference = $1`, again.str("order_id")); n != 1 {
					t.Errorf("%d confirmations queued, want 1", n)
				}
				f.assertConsistent(t)
				if replay := f.do(t, "POST", "/v1/checkout", tok, key, body); replay.status != 201 || replay.str("order_id") != again.str("order_id") {
					t.Errorf("second retry: %d %s", replay.status, replay.raw)
				}
			})
		}
		orders := f.count(t, `SELECT COUNT(*) FROM orders WHERE status = 'confirmed'`)
		// Each order: 2 × 15.00 − 5.00 in points = 25.00 charged → 25 points earned.
		if want := 10_000 - orders*500 + orders*25; f.loyalty.Balance(member) != want {
			t.Errorf("points balance = %d, want %d (%d orders)", f.loyalty.Balance(member), want, orders)
		}
	})
}
