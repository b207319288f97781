package checkout_test

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestRefundRestoresPointsAndPayment(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d, fixtureOpts{})
		p := f.product(t, "REF-1", 12900, 10)
		member := "mem_refund"
		f.loyalty.setBalance(member, 1000)
		tok := f.token(t, auth.ScopeMember, member)
		c := f.cart(t, member, map[string]int64{p.ID: 1})
		r := f.do(t, "POST", "/v1/checkout", tok, "buy", checkoutBody(c, "tok_visa", "", 500))
		if r.status != 201 || r.body["points_redeemed"].(float64) != 500 || r.body["points_earned"].(float64) != 124 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		orderID := r.str("order_id")
		if got := f.loyalty.Balance(member); got != 1000-500+124 {
			t.Fatalf("balance after purchase = %d", got)
		}
		if g := f.do(t, "GET", "/v1/orders/"+orderID, tok, "", ""); g.status != 200 || g.str("status") != "confirmed" {
			t.Errorf("owner read: %d %s", g.status, g.raw)
		}
		if g := f.do(t, "GET", "/v1/orders/"+orderID, f.token(t, auth.ScopeMember, "someone_else"), "", ""); g.status != 404 {
			t.Errorf("other member read: %d", g.status)
		}
		if g := f.do(t, "GET", "/v1/members/"+member+"/orders", tok, "", ""); g.status != 200 || len(g.body["orders"].([]any)) != 1 {
			t.Errorf("list: %d %s", g.status, g.raw)
		}
		if g := f.do(t, "POST", "/v1/orders/"+orderID+"/refund", tok, "rf-member", `{}`); g.status != 403 {
			t.Errorf("member refund: %d", g.status)
		}
		admin := f.token(t, auth.ScopeAdmin, "ops")
		part := f.do(t, "POST", "/v1/orders/"+orderID+"/refund", admin, "rf-1", `{"amount":{"amount":2000,"currency":"USD"}}`)
		if part.status != 200 || part.body["order"].(map[string]any)["status"] != "partially_refunded" {
			t.Fatalf("partial: %d %s", part.status, part.raw)
		}
		full := f.do(t, "POST", "/v1/orders/"+orderID+"/refund", admin, "rf-2", ``)
		if full.status != 200 || full.body["order"].(map[string]any)["status"] != "refunded" || full.body["points_returned"].(float64) != 500 {
			t.Fatalf("full: %d %s", full.status, full.raw)
		}
		if again := f.do(t, "POST", "/v1/orders/"+orderID+"/refund", admin, "rf-2", ``); again.raw != full.raw {
			t.Errorf("replay differs: %s", again.raw)
		}
		if got := f.loyalty.Balance(member); got != 1000 {
			t.Errorf("balance after refund = %d, want 1000 (spent points back, earned reversed)", got)
		}
		if n := f.count(t, `SELECT COUNT(*) FROM payment_charges WHERE status = 'refunded' AND refunded_amount = amount AND amount = 12400`); n != 1 {
			t.Errorf("charge not fully refunded")
		}
		if g := f.do(t, "POST", "/v1/orders/"+orderID+"/refund", admin, "rf-3", ``); g.status != 409 {
			t.Errorf("refund of refunded order: %d %s", g.status, g.raw)
		}
	})
}
