package checkout_test

import (
	"context"
	"testing"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// chargeOf is the charge id of an order.
func (f *fixture) chargeOf(t *testing.T, orderID string) string {
	t.Helper()
	var id string
	if err := f.d.Read().QueryRow(`SELECT charge_id FROM orders WHERE id = $1`, orderID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) orderState(t *testing.T, orderID string) (status string, refunded int64) {
	t.Helper()
	if err := f.d.Read().QueryRow(`SELECT status, refunded_amount FROM orders WHERE id = $1`, orderID).Scan(&status, &refunded); err != nil {
		t.Fatal(err)
	}
	return status, refunded
}

func (f *fixture) verifyBooks(t *testing.T) {
	t.Helper()
	f.assertConsistent(t)
	problems, err := f.real.svc.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("loyalty verify: %s", p)
	}
}

// Refunds made at the provider (Stripe's dashboard) update the order and the
// points as Godwit's own refund does; the event of Godwit's own refund, a
// redelivery and an older event change nothing.
func TestRefundedOutside(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFixture(t, d, fixtureOpts{local: true})
		p := f.product(t, "EXT-1", 12900, 10)
		member := "mem_ext_refund"
		f.loyalty.setBalance(member, 1000)
		tok := f.token(t, auth.ScopeMember, member)
		r := f.do(t, "POST", "/v1/checkout", tok, "buy", checkoutBody(f.cart(t, member, map[string]int64{p.ID: 1}), "tok_visa", "", 500))
		if r.status != 201 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		orderID := r.str("order_id")
		f.loyalty.(*realLoyalty).vestAll() // the order's points are the member's, past the return window
		charge := f.chargeOf(t, orderID)
		usd := func(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
		refunds := func() int64 { return f.count(t, `SELECT COUNT(*) FROM order_refunds WHERE order_id = $1`, orderID) }

		// A partial refund in the dashboard, its event delivered twice.
		if _, err := f.sim.Refund(ctx, charge, usd(2000), "dashboard-1"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if found, err := f.checkout.RefundedOutside(ctx, charge, usd(2000)); !found || err != nil {
				t.Fatalf("found %v, %v", found, err)
			}
		}
		if st, amt := f.orderState(t, orderID); st != "partially_refunded" || amt != 2000 || refunds() != 1 {
			t.Fatalf("after the dashboard refund: %s %d, %d refunds", st, amt, refunds())
		}
		// Godwit's own refund, then its event: nothing more.
		admin := f.token(t, auth.ScopeAdmin, "ops")
		if g := f.do(t, "POST", "/v1/orders/"+orderID+"/refund", admin, "rf-own", `{"amount":{"amount":3000,"currency":"USD"}}`); g.status != 200 {
			t.Fatalf("own refund: %d %s", g.status, g.raw)
		}
		for _, total := range []int64{5000, 2000} { // its event, and the first one again, late
			if _, err := f.checkout.RefundedOutside(ctx, charge, usd(total)); err != nil {
				t.Fatal(err)
			}
		}
		if st, amt := f.orderState(t, orderID); st != "partially_refunded" || amt != 5000 || refunds() != 2 {
			t.Fatalf("after Godwit's refund's event: %s %d, %d refunds", st, amt, refunds())
		}
		if got := f.loyalty.Balance(member); got != 1000-500+124 {
			t.Fatalf("partial refunds changed points: %d", got)
		}
		// The rest refunded in the dashboard: the order is refunded, the
		// points spent come back and those earned are reversed.
		if _, err := f.sim.Refund(ctx, charge, usd(7400), "dashboard-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.checkout.RefundedOutside(ctx, charge, usd(12400)); err != nil {
			t.Fatal(err)
		}
		if st, amt := f.orderState(t, orderID); st != "refunded" || amt != 12400 {
			t.Fatalf("after the full refund: %s %d", st, amt)
		}
		if got := f.loyalty.Balance(member); got != 1000 {
			t.Errorf("balance %d, want 1000", got)
		}
		if found, err := f.checkout.RefundedOutside(ctx, "pi_not_ours", usd(100)); found || err != nil {
			t.Errorf("unknown charge: %v %v", found, err)
		}
		f.verifyBooks(t)
	})
}

// A lost dispute refunds what is left of the order without calling the
// provider and claws back the points it earned, into a negative balance if
// they were spent; the points spent on it stay spent.
func TestDisputeLost(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFixture(t, d, fixtureOpts{local: true})
		big, small := f.product(t, "DSP-1", 12900, 10), f.product(t, "DSP-2", 1000, 10)
		member := "mem_dispute"
		f.loyalty.setBalance(member, 0)
		tok := f.token(t, auth.ScopeMember, member)
		r := f.do(t, "POST", "/v1/checkout", tok, "buy-1", checkoutBody(f.cart(t, member, map[string]int64{big.ID: 1}), "tok_visa", "", 0))
		if r.status != 201 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		orderID, earned := r.str("order_id"), int64(r.body["points_earned"].(float64))
		f.loyalty.(*realLoyalty).vestAll() // past the return window: the points are spendable
		// The points earned are spent on a second order.
		if r2 := f.do(t, "POST", "/v1/checkout", tok, "buy-2", checkoutBody(f.cart(t, member, map[string]int64{small.ID: 1}), "tok_visa", "", earned)); r2.status != 201 {
			t.Fatalf("%d %s", r2.status, r2.raw)
		}
		before := f.loyalty.Balance(member)
		charge := f.chargeOf(t, orderID)
		for range 2 {
			if found, err := f.checkout.DisputeLost(ctx, charge, "dp_1"); !found || err != nil {
				t.Fatalf("found %v, %v", found, err)
			}
		}
		if st, amt := f.orderState(t, orderID); st != "refunded" || amt != 12900 {
			t.Fatalf("order %s %d", st, amt)
		}
		if got := f.loyalty.Balance(member); got != before-earned || got >= 0 {
			t.Errorf("balance %d, want %d (negative)", got, before-earned)
		}
		// The provider was not asked: the simulator's charge is untouched.
		if n := f.count(t, `SELECT COUNT(*) FROM payment_refunds`); n != 0 {
			t.Errorf("%d provider refunds", n)
		}
		f.verifyBooks(t)
	})
}
