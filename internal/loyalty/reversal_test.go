package loyalty_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestReversal(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.member(t, "kin")
		e.earn(t, "m", hotel("h0", 10_000))          // 1,000
		stay := e.earn(t, "m", hotel("h1", 250_000)) // 25,000: silver
		if stay.NewTier != "silver" {
			t.Fatalf("setup: tier %q", stay.NewTier)
		}
		if _, err := e.svc.Redeem(ctx, "m", "award-domestic-business", ""); err != nil { // 25,000
			t.Fatal(err)
		}

		r := e.do(t, "POST", "/v1/admin/transactions/"+stay.TransactionID+"/reversal", e.admin(t), map[string]any{"reason": "stay cancelled"})
		var rev loyalty.ReversalResult
		r.json(t, &rev)
		if r.status != 201 || rev.PointsReversed != 25_000 || rev.StatusPointsReversed != 25_000 || rev.NewBalance != -24_000 ||
			rev.Tier != "blue" || rev.Actor != "admin:ops" {
			t.Fatalf("reversal: %d %s", r.status, r.raw)
		}
		m := e.get(t, "m")
		if m.Balance != -24_000 || m.StatusPoints != 1000 || m.Tier != "blue" {
			t.Errorf("after reversal: balance %d status %d tier %s", m.Balance, m.StatusPoints, m.Tier)
		}
		r = e.do(t, "POST", "/v1/admin/transactions/"+stay.TransactionID+"/reversal", e.service(t), map[string]any{"reason": "again"})
		var again loyalty.ReversalResult
		r.json(t, &again)
		if r.status != 200 || again.TransactionID != rev.TransactionID {
			t.Errorf("second reversal: %d %s", r.status, r.raw)
		}
		for _, c := range []struct {
			name, path, tok string
			body            any
			status          int
			code            string
		}{
			{"no reason", "/v1/admin/transactions/" + stay.TransactionID + "/reversal", e.admin(t), map[string]any{"reason": " "}, 422, "reason_required"},
			{"unknown", "/v1/admin/transactions/nope/reversal", e.admin(t), map[string]any{"reason": "x"}, 404, "transaction_not_found"},
			{"not an earning", "/v1/admin/transactions/" + rev.TransactionID + "/reversal", e.admin(t), map[string]any{"reason": "x"}, 422, "not_reversible"},
			{"member", "/v1/admin/transactions/" + stay.TransactionID + "/reversal", e.memberTok(t, "m"), map[string]any{"reason": "x"}, 403, "forbidden"},
			{"redeem while negative", "/v1/members/m/redemptions", e.memberTok(t, "m"), map[string]any{"option_id": "merch-luggage-tag"}, 422, "negative_balance"},
			{"transfer while negative", "/v1/members/m/transfers", e.memberTok(t, "m"), map[string]any{"to_member_id": "kin", "points": 100}, 422, "negative_balance"},
			{"partner transfer while negative", "/v1/members/m/transfers", e.memberTok(t, "m"), map[string]any{"partner_id": "northwind-airways", "points": 1000}, 422, "negative_balance"},
			{"adjust without reason", "/v1/admin/members/m/adjustments", e.admin(t), map[string]any{"points": 100}, 422, "reason_required"},
			{"adjust by zero", "/v1/admin/members/m/adjustments", e.admin(t), map[string]any{"points": 0, "reason": "x"}, 422, "invalid_points"},
			{"member adjusts", "/v1/admin/members/m/adjustments", e.memberTok(t, "m"), map[string]any{"points": 100, "reason": "x"}, 403, "forbidden"},
		} {
			r := e.do(t, "POST", c.path, c.tok, c.body)
			if r.status != c.status || r.problem(t)["code"] != c.code {
				t.Errorf("%s: %d %s", c.name, r.status, r.raw)
			}
		}
		if got := fmt.Sprint(e.lotsOf(t, "m")); got != "[0 0]" {
			t.Errorf("lots while owing %s, want [0 0]", got)
		}
		e.verify(t)

		// Earning repays the debt first; an adjustment too.
		e.earn(t, "m", hotel("h2", 200_000)) // 20,000 → -4,000
		r = e.do(t, "POST", "/v1/admin/members/m/adjustments", e.admin(t), map[string]any{"points": 6000, "reason": "goodwill"})
		var adj loyalty.AdjustmentResult
		r.json(t, &adj)
		if r.status != 201 || adj.NewBalance != 2000 || adj.Actor != "admin:ops" || adj.Reason != "goodwill" {
			t.Errorf("adjustment: %d %s", r.status, r.raw)
		}
		if got := fmt.Sprint(e.lotsOf(t, "m")); got != "[0 0 2000]" {
			t.Errorf("lots after repaying %s, want [0 0 2000] (the earning only repaid the debt)", got)
		}
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", ""); err != nil {
			t.Errorf("redeem after repaying: %v", err)
		}
		if _, err := e.svc.Adjust(ctx, "m", -200, "duplicate credit"); err != nil {
			t.Error(err)
		}
		if m := e.get(t, "m"); m.Balance != 300 {
			t.Errorf("balance %d, want 300", m.Balance)
		}
		e.verify(t)
	})
}

func TestReversePurchase(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		if _, err := e.svc.EarnPurchase(ctx, "m", "o1", usd(12_345)); err != nil { // 123 points
			t.Fatal(err)
		}
		for range 2 {
			if err := e.svc.ReversePurchase(ctx, "m", "o1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.svc.ReversePurchase(ctx, "m", "never-earned"); err != nil {
			t.Errorf("no earning: %v", err)
		}
		wantCode(t, "another member's order", e.svc.ReversePurchase(ctx, "other", "o1"), "order_member_mismatch")
		if m := e.get(t, "m"); m.Balance != 0 || m.StatusPoints != 0 {
			t.Errorf("balance %d status %d", m.Balance, m.StatusPoints)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions WHERE type = 'reversal'`); n != 1 {
			t.Errorf("%d reversals", n)
		}
		e.verify(t)
	})
}

func TestRequalify(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		for _, id := range []string{"gold", "silver", "late"} {
			e.member(t, id)
		}
		e.earn(t, "gold", hotel("g1", 500_000))   // 50,000 in 2026
		e.earn(t, "silver", hotel("s1", 300_000)) // 30,000 in 2026
		e.clock.Set(time.Date(2027, 1, 1, 1, 0, 0, 0, time.UTC))
		e.earn(t, "silver", hotel("s2", 100_000)) // 10,000 in 2027, before the job ran
		e.member(t, "new")

		rep, err := e.svc.Requalify(ctx, e.clock.Now())
		if err != nil || rep.Year != 2026 || rep.Members != 3 || rep.Unchanged != 3 {
			t.Errorf("2026: %+v %v", rep, err)
		}
		for id, want := range map[string][2]int64{"gold": {0, 50_000}, "silver": {10_000, 25_000}, "late": {0, 0}} {
			m := e.get(t, id)
			if m.StatusPoints != want[0] || m.StatusYear != 2027 {
				t.Errorf("%s: status %d in %d, want %d in 2027", id, m.StatusPoints, m.StatusYear, want[0])
			}
			if tier := e.svc.Program().TierFor(want[1]).ID; m.Tier != tier {
				t.Errorf("%s: tier %s, want %s", id, m.Tier, tier)
			}
		}
		if rep, err := e.svc.Requalify(ctx, e.clock.Now()); err != nil || rep.Members != 0 {
			t.Errorf("second run: %+v %v", rep, err)
		}
		// A reversal after requalification leaves that year's status alone.
		rev, err := e.svc.ReverseTransaction(ctx, mustTx(t, e, "gold"), "audit")
		if err != nil || rev.StatusPointsReversed != 0 || rev.Tier != "gold" {
			t.Errorf("reversal after requalification: %+v %v", rev, err)
		}

		e.clock.Set(time.Date(2028, 1, 3, 0, 0, 0, 0, time.UTC))
		rep, err = e.svc.Requalify(ctx, e.clock.Now())
		if err != nil || rep.Year != 2027 || rep.Downgraded != 2 {
			t.Errorf("2027: %+v %v", rep, err)
		}
		for _, id := range []string{"gold", "silver", "new"} {
			if m := e.get(t, id); m.Tier != "blue" {
				t.Errorf("%s: tier %s after a year without status, want blue", id, m.Tier)
			}
		}
		e.verify(t)
	})
}

// mustTx returns the id of the member's oldest ledger transaction.
func mustTx(t *testing.T, e *env, id string) string {
	t.Helper()
	st, err := e.svc.Statement(context.Background(), id, 0, "")
	if err != nil || len(st.Entries) == 0 {
		t.Fatalf("statement %s: %v", id, err)
	}
	return st.Entries[len(st.Entries)-1].TransactionID
}
