package checkout_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// manualShop is a fixture with manual capture, two products (A at 30.00,
// B at 10.00, ten of each) and a member with 5000 points.
type manualShop struct {
	*fixture
	a, b   string
	member string
	tok    string
	admin  string
}

func newManualShop(t *testing.T, d *db.DB, o fixtureOpts) *manualShop {
	t.Helper()
	o.manual = true
	f := newFixture(t, d, o)
	s := &manualShop{fixture: f, member: "mem_manual"}
	s.a, s.b = f.product(t, "CAP-A", 3000, 10).ID, f.product(t, "CAP-B", 1000, 10).ID
	f.cart(t, s.member, nil) // creates the member with the real loyalty service
	f.loyalty.setBalance(s.member, 5000)
	s.tok, s.admin = f.token(t, auth.ScopeMember, s.member), f.token(t, auth.ScopeAdmin, "ops")
	return s
}

// buy checks out items paying points, and returns the authorized order's id.
func (s *manualShop) buy(t *testing.T, key string, items map[string]int64, points, wantCharged int64) string {
	t.Helper()
	c := s.cart(t, s.member, items)
	r := s.do(t, "POST", "/v1/checkout", s.tok, key, checkoutBody(c, "tok_visa", "", points))
	if r.status != 201 || r.str("status") != "authorized" || r.body["points_earned"].(float64) != 0 ||
		r.body["charged"].(map[string]any)["amount"].(float64) != float64(wantCharged) {
		t.Fatalf("checkout: %d %s", r.status, r.raw)
	}
	return r.str("order_id")
}

func (s *manualShop) order(t *testing.T, id string) resp {
	t.Helper()
	r := s.do(t, "GET", "/v1/orders/"+id, s.tok, "", "")
	if r.status != 200 {
		t.Fatalf("order: %d %s", r.status, r.raw)
	}
	return r
}

func (s *manualShop) chargeOf(t *testing.T, orderID string) (status string, amount int64) {
	t.Helper()
	err := s.d.Read().QueryRowContext(context.Background(),
		`SELECT c.status, c.amount FROM payment_charges c JOIN orders o ON o.charge_id = c.id WHERE o.id = $1`, orderID).Scan(&status, &amount)
	if err != nil {
		t.Fatal(err)
	}
	return status, amount
}

func num(m map[string]any, k string) int64 {
	v, _ := m[k].(float64)
	return int64(v)
}

func amountOf(m map[string]any, k string) int64 {
	v, _ := m[k].(map[string]any)
	return num(v, "amount")
}

// TestManualCaptureFulfilAll: the checkout authorises only (order
// authorized, stock taken, nothing earned); fulfilling it captures it all and
// earns on it, once however often it is repeated.
func TestManualCaptureFulfilAll(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		s := newManualShop(t, d, o)
		before := s.loyalty.pointsEarned(s.member)
		id := s.buy(t, "all", map[string]int64{s.a: 2, s.b: 1}, 0, 7000)
		o1 := s.order(t, id)
		if o1.str("status") != "authorized" || amountOf(o1.body, "charged") != 0 || amountOf(o1.body, "authorized") != 7000 {
			t.Fatalf("authorized order: %s", o1.raw)
		}
		if st, amt := s.chargeOf(t, id); st != "authorized" || amt != 7000 {
			t.Errorf("charge %s %d, want authorized 7000", st, amt)
		}
		if got := s.loyalty.pointsEarned(s.member); got != before {
			t.Errorf("points before fulfilment = %d, want %d (nothing earned)", got, before)
		}
		if s.available(t, s.a) != 8 || s.available(t, s.b) != 9 {
			t.Errorf("stock %d/%d, want 8/9", s.available(t, s.a), s.available(t, s.b))
		}
		s.assertConsistent(t)

		r := s.do(t, "POST", "/v1/orders/"+id+"/fulfil", s.admin, "", "")
		if r.status != 200 || r.str("status") != "confirmed" || amountOf(r.body, "charged") != 7000 || num(r.body, "points_earned") != 70 {
			t.Fatalf("fulfil: %d %s", r.status, r.raw)
		}
		if st, amt := s.chargeOf(t, id); st != "succeeded" || amt != 7000 {
			t.Errorf("charge %s %d, want succeeded 7000", st, amt)
		}
		if got := s.loyalty.pointsEarned(s.member); got != before+70 {
			t.Errorf("points = %d, want %d", got, before+70)
		}
		if again := s.do(t, "POST", "/v1/orders/"+id+"/fulfil", s.admin, "", `{"cancelled":[{"product_id":"`+s.a+`","quantity":1}]}`); again.raw != r.raw {
			t.Errorf("second fulfilment answered differently:\n%s\n%s", again.raw, r.raw)
		}
		s.assertConsistent(t)
	})
}

// TestManualCaptureCancelledLine: a cancelled line reduces the capture by
// exactly its value, goes back to stock, and earns nothing; when cancelled
// value exceeds the card part, the excess comes back as points.
func TestManualCaptureCancelledLine(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		s := newManualShop(t, d, o)
		start := s.loyalty.pointsEarned(s.member)
		// 70.00, 500 points (5.00) paid: 65.00 authorised; B cancelled: 55.00 captured.
		id := s.buy(t, "line", map[string]int64{s.a: 2, s.b: 1}, 500, 6500)
		r := s.do(t, "POST", "/v1/orders/"+id+"/fulfil", s.admin, "", `{"cancelled":[{"product_id":"`+s.b+`","quantity":1}]}`)
		if r.status != 200 || r.str("status") != "confirmed" || amountOf(r.body, "charged") != 5500 || num(r.body, "points_earned") != 55 ||
			num(r.body, "points_returned") != 0 {
			t.Fatalf("fulfil: %d %s", r.status, r.raw)
		}
		if st, amt := s.chargeOf(t, id); st != "succeeded" || amt != 5500 {
			t.Errorf("charge %s %d, want succeeded 5500", st, amt)
		}
		if s.available(t, s.a) != 8 || s.available(t, s.b) != 10 {
			t.Errorf("stock %d/%d, want 8/10 (B restocked)", s.available(t, s.a), s.available(t, s.b))
		}
		if got := s.loyalty.pointsEarned(s.member); got != start-500+55 {
			t.Errorf("points = %d, want %d", got, start-500+55)
		}
		s.assertConsistent(t)

		// 40.00, 3500 points paid: 5.00 authorised. A (30.00) cancelled:
		// the card part goes first (nothing captured, the authorisation
		// released), and 25.00 of points come back.
		mid := s.loyalty.pointsEarned(s.member)
		id2 := s.buy(t, "beyond", map[string]int64{s.a: 1, s.b: 1}, 3500, 500)
		r = s.do(t, "POST", "/v1/orders/"+id2+"/fulfil", s.admin, "", `{"cancelled":[{"product_id":"`+s.a+`","quantity":1}]}`)
		if r.status != 200 || r.str("status") != "confirmed" || amountOf(r.body, "charged") != 0 || num(r.body, "points_returned") != 2500 ||
			num(r.body, "points_earned") != 0 {
			t.Fatalf("fulfil beyond the card part: %d %s", r.status, r.raw)
		}
		if st, _ := s.chargeOf(t, id2); st != "voided" {
			t.Errorf("charge %s, want voided", st)
		}
		if got := s.loyalty.pointsEarned(s.member); got != mid-3500+2500 {
			t.Errorf("points = %d, want %d", got, mid-3500+2500)
		}
		s.assertConsistent(t)
	})
}

// TestManualCaptureCancelEverything: cancelling every unit releases the
// authorisation, cancels the order and gives back every point and unit.
func TestManualCaptureCancelEverything(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		s := newManualShop(t, d, o)
		start := s.loyalty.pointsEarned(s.member)
		id := s.buy(t, "none", map[string]int64{s.a: 2}, 1000, 5000)
		r := s.do(t, "POST", "/v1/orders/"+id+"/fulfil", s.admin, "", `{"cancelled":[{"product_id":"`+s.a+`","quantity":2}]}`)
		if r.status != 200 || r.str("status") != "cancelled" || amountOf(r.body, "charged") != 0 || num(r.body, "points_returned") != 1000 {
			t.Fatalf("fulfil: %d %s", r.status, r.raw)
		}
		if st, _ := s.chargeOf(t, id); st != "voided" {
			t.Errorf("charge %s, want voided (no money taken)", st)
		}
		if s.available(t, s.a) != 10 {
			t.Errorf("stock %d, want 10", s.available(t, s.a))
		}
		if got := s.loyalty.pointsEarned(s.member); got != start {
			t.Errorf("points = %d, want %d", got, start)
		}
		if g := s.do(t, "POST", "/v1/orders/"+id+"/refund", s.admin, "rf", ""); g.status != 409 {
			t.Errorf("refund of a cancelled order: %d %s", g.status, g.raw)
		}
		s.assertConsistent(t)
	})
}

// TestManualCaptureConcurrentFulfil: twenty fulfilments of one order at
// once capture once, restock once, return points once and earn once.
func TestManualCaptureConcurrentFulfil(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		s := newManualShop(t, d, o)
		start := s.loyalty.pointsEarned(s.member)
		// 40.00 with 3500 points: B cancelled takes the 5.00 card part
		// and 5.00 of points back.
		id := s.buy(t, "race", map[string]int64{s.a: 1, s.b: 1}, 3500, 500)
		body := `{"cancelled":[{"product_id":"` + s.b + `","quantity":1}]}`
		var wg sync.WaitGroup
		out := make([]resp, 20)
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = s.do(t, "POST", "/v1/orders/"+id+"/fulfil", s.admin, "", body)
			}()
		}
		wg.Wait()
		for i, r := range out {
			if r.status != 200 || r.str("status") != "confirmed" || amountOf(r.body, "charged") != 0 || num(r.body, "points_returned") != 500 {
				t.Errorf("fulfil %d: %d %s", i, r.status, r.raw)
			}
		}
		if s.available(t, s.b) != 10 || s.available(t, s.a) != 9 {
			t.Errorf("stock %d/%d, want 9/10 (B restocked once)", s.available(t, s.a), s.available(t, s.b))
		}
		if got := s.loyalty.pointsEarned(s.member); got != start-3500+500 {
			t.Errorf("points = %d, want %d (returned once)", got, start-3500+500)
		}
		s.assertConsistent(t)

		id2 := s.buy(t, "race2", map[string]int64{s.a: 2}, 0, 6000)
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = s.do(t, "POST", "/v1/orders/"+id2+"/fulfil", s.admin, "", "")
			}()
		}
		wg.Wait()
		for i, r := range out {
			if r.status != 200 || r.str("status") != "confirmed" || amountOf(r.body, "charged") != 6000 || num(r.body, "points_earned") != 60 {
				t.Errorf("fulfil %d: %d %s", i, r.status, r.raw)
			}
		}
		if st, amt := s.chargeOf(t, id2); st != "succeeded" || amt != 6000 {
			t.Errorf("charge %s %d", st, amt)
		}
		if got := s.loyalty.pointsEarned(s.member); got != start-3500+500+60 {
			t.Errorf("points = %d, want %d (earned once)", got, start-3500+500+60)
		}
		s.assertConsistent(t)
	})
}

// TestManualCaptureBadFulfil: bad input is a 4xx problem that changes
// nothing; a member cannot fulfil; an order that is not authorized is 409.
func TestManualCaptureBadFulfil(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		s := newManualShop(t, d, o)
		id := s.buy(t, "bad", map[string]int64{s.a: 2, s.b: 1}, 0, 7000)
		line := func(p string, q int64) string {
			return fmt.Sprintf(`{"cancelled":[{"product_id":%q,"quantity":%d}]}`, p, q)
		}
		cases := []struct {
			name, tok, body string
			status          int
			code            string
		}{
			{"unknown line", s.admin, line("prod_nope", 1), 422, "unknown_order_line"},
			{"over the quantity", s.admin, line(s.a, 3), 422, "cancel_exceeds_quantity"},
			{"negative", s.admin, line(s.a, -1), 400, "invalid_field"},
			{"zero", s.admin, line(s.a, 0), 400, "invalid_field"},
			{"twice", s.admin, `{"cancelled":[{"product_id":"` + s.a + `","quantity":1},{"product_id":"` + s.a + `","quantity":1}]}`, 400, "invalid_field"},
			{"unknown field", s.admin, `{"cancel":[]}`, 400, "unknown_field"},
			{"member", s.tok, "", 403, ""},
		}
		for _, tc := range cases {
			r := s.do(t, "POST", "/v1/orders/"+id+"/fulfil", tc.tok, "", tc.body)
			if r.status != tc.status || (tc.code != "" && r.str("code") != tc.code) {
				t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.raw, tc.status, tc.code)
			}
		}
		if g := s.order(t, id); g.str("status") != "authorized" || strings.Contains(g.raw, `"cancelled_quantity":1`) {
			t.Errorf("order changed: %s", g.raw)
		}
		if n := s.count(t, `SELECT COUNT(*) FROM orders WHERE fulfilment <> ''`); n != 0 {
			t.Errorf("%d fulfilments recorded", n)
		}
		if st, amt := s.chargeOf(t, id); st != "authorized" || amt != 7000 {
			t.Errorf("charge %s %d", st, amt)
		}
		if r := s.do(t, "POST", "/v1/orders/ord_nope/fulfil", s.admin, "", ""); r.status != 404 {
			t.Errorf("unknown order: %d %s", r.status, r.raw)
		}
		s.assertConsistent(t)
		if r := s.do(t, "POST", "/v1/orders/"+id+"/refund", s.admin, "rf", ""); r.status != 409 {
			t.Errorf("refund of an authorized order: %d %s", r.status, r.raw)
		}

		auto := newFixture(t, d, o) // automatic capture on the same database
		c := auto.cart(t, s.member, map[string]int64{s.a: 1})
		r := auto.do(t, "POST", "/v1/checkout", s.tok, "auto", checkoutBody(c, "tok_visa", "", 0))
		if r.status != 201 || r.str("status") != "confirmed" {
			t.Fatalf("automatic checkout: %d %s", r.status, r.raw)
		}
		if g := auto.do(t, "POST", "/v1/orders/"+r.str("order_id")+"/fulfil", s.admin, "", ""); g.status != 409 || g.str("code") != "order_not_authorized" {
			t.Errorf("fulfil of a confirmed order: %d %s", g.status, g.raw)
		}
	})
}

// TestVerifyFindsBadCapture: verify reports a fulfilled order whose capture
// is not its authorisation less its cancelled lines.
func TestVerifyFindsBadCapture(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s := newManualShop(t, d, fixtureOpts{local: true})
		id := s.buy(t, "v", map[string]int64{s.a: 2, s.b: 1}, 0, 7000)
		if r := s.do(t, "POST", "/v1/orders/"+id+"/fulfil", s.admin, "", `{"cancelled":[{"product_id":"`+s.b+`","quantity":1}]}`); r.status != 200 {
			t.Fatalf("fulfil: %d %s", r.status, r.raw)
		}
		if err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE order_items SET cancelled_quantity = 0 WHERE order_id = $1`, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		problems, err := s.checkout.Verify(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(problems, "\n")
		if !strings.Contains(joined, "captured 6000 of 7000 authorised") {
			t.Errorf("verify did not report the capture:\n%s", joined)
		}
	})
}

// TestRecoveryFinishesAHalfDoneFulfilment: a crash after a fulfilment's plan
// and capture, before its restock, earning and confirmation, leaves the card
// captured and nothing earned. The recovery pass leaves it alone while it may
// still be running, then finishes it once: the order confirmed, the points
// earned on the capture, nothing captured twice.
func TestRecoveryFinishesAHalfDoneFulfilment(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		s := newManualShop(t, d, o)
		ctx := context.Background()
		before := s.loyalty.pointsEarned(s.member)
		id := s.buy(t, "half", map[string]int64{s.a: 2, s.b: 1}, 0, 7000)

		// What a fulfilment does before the crash: record the plan, capture.
		plan, err := s.orders.StartFulfilment(ctx, id, nil, func(order.Order, money.Money) int64 { return 0 })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.sim.Capture(ctx, plan.Order.ChargeID, plan.Capture, "capture/"+id); err != nil {
			t.Fatal(err)
		}

		rep, err := s.checkout.Recover(ctx)
		if err != nil || rep.Fulfilled != 0 {
			t.Fatalf("recovery while the fulfilment may still run: %+v %v", rep, err)
		}
		if got := s.order(t, id).str("status"); got != "authorized" {
			t.Fatalf("order %s before recovery, want authorized", got)
		}

		s.clock.Advance(time.Hour)
		rep, err = s.checkout.Recover(ctx)
		if err != nil || rep.Fulfilled != 1 || rep.Errors != 0 {
			t.Fatalf("recovery: %+v %v, want one fulfilment finished", rep, err)
		}
		o1 := s.order(t, id)
		if o1.str("status") != "confirmed" || amountOf(o1.body, "charged") != 7000 || num(o1.body, "points_earned") != 70 {
			t.Fatalf("recovered order: %s", o1.raw)
		}
		if st, amt := s.chargeOf(t, id); st != "succeeded" || amt != 7000 {
			t.Errorf("charge %s %d, want succeeded 7000", st, amt)
		}
		if got := s.loyalty.pointsEarned(s.member); got != before+70 {
			t.Errorf("points = %d, want %d", got, before+70)
		}
		if rep, err := s.checkout.Recover(ctx); err != nil || rep.Fulfilled != 0 {
			t.Errorf("second pass: %+v %v, want nothing left", rep, err)
		}
		s.assertConsistent(t)
	})
}
