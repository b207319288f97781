package checkout_test

import (
	"context"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// A checkout whose payment service is down answers 503 at
// processing_payment; its record says the same step (it said
// holding_points), and so does the failure the recovery pass records once it
// has undone the checkout: the answer, the record and the outcome agree.
func TestPaymentDownStepAgrees(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "DOWN-1", 1500, 10)
		member := "mem_down"
		f.loyalty.setBalance(member, 10_000)
		tok := f.token(t, auth.ScopeMember, member)
		for _, points := range []int64{0, 500} {
			key := "down-" + map[bool]string{true: "points", false: "cash"}[points > 0]
			id := checkout.ID((&auth.Principal{Scope: auth.ScopeMember, Subject: member}).Actor(), key)
			f.payDown.Store(true)
			r := f.do(t, "POST", "/v1/checkout", tok, key, checkoutBody(f.cart(t, member, map[string]int64{p.ID: 1}), "tok_visa", "", points))
			if r.status != 503 || r.str("failure_step") != checkout.StepProcessingPayment {
				t.Fatalf("%s: checkout with payment down = %d %s, want 503 at processing_payment", key, r.status, r.raw)
			}
			st, err := f.checkout.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != "in_progress" || st.Step != r.str("failure_step") {
				t.Errorf("%s: record %s at %s, answer said %s", key, st.State, st.Step, r.str("failure_step"))
			}

			f.payDown.Store(false)
			f.clock.Advance(2*checkout.DefaultLease + time.Second)
			if rep, err := f.checkout.Recover(context.Background()); err != nil || rep.Compensated != 1 {
				t.Fatalf("%s: recover = %+v, %v", key, rep, err)
			}
			if st, err = f.checkout.Get(context.Background(), id); err != nil || st.State != "failed" || st.FailureStep != checkout.StepProcessingPayment {
				t.Errorf("%s: after recovery %+v (%v), want failed at processing_payment", key, st, err)
			}
			f.assertConsistent(t)
		}
		if f.loyalty.Balance(member) != 10_000 {
			t.Errorf("points balance %d after undone checkouts, want 10000", f.loyalty.Balance(member))
		}
	})
}
