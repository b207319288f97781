package loyalty_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestRedeem(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.member(t, "poor")
		e.earn(t, "m", hotel("h1", 500_000)) // 50,000 status points: gold, 5% off redemptions
		e.fund(t, "poor", 100)
		tok := e.memberTok(t, "m")

		r := e.doKey(t, "POST", "/v1/members/m/redemptions", tok, "k1", map[string]any{"option_id": "award-domestic-economy"})
		if r.status != 201 {
			t.Fatalf("redeem: %d %s", r.status, r.raw)
		}
		var res map[string]any
		r.json(t, &res)
		if res["status"] != "success" || res["points_deducted"] != float64(11875) || res["new_balance"] != float64(50000-11875) ||
			!strings.HasPrefix(res["confirmation"].(string), "AW-") || res["redemption_id"] == "" {
			t.Errorf("redeem response %s", r.raw)
		}
		// The same key replays; nothing more is taken.
		again := e.doKey(t, "POST", "/v1/members/m/redemptions", tok, "k1", map[string]any{"option_id": "award-domestic-economy"})
		if again.status != 201 || string(again.raw) != string(r.raw) {
			t.Errorf("replay: %d %s", again.status, again.raw)
		}
		if m := e.get(t, "m"); m.Balance != 38125 || m.Pending != 0 {
			t.Errorf("after redeem: balance %d pending %d", m.Balance, m.Pending)
		}
		// Service-level reference.
		first, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", "ref-1")
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", "ref-1")
		if err != nil || !second.Replayed || second.RedemptionID != first.RedemptionID || second.NewBalance != first.NewBalance {
			t.Errorf("reference replay: %+v %v", second, err)
		}
		_, err = e.svc.Redeem(ctx, "m", "merch-travel-mug", "ref-1")
		wantCode(t, "reference reused for another option", err, "redemption_reference_conflict")
		if m := e.get(t, "m"); m.Balance != 38125-1425 {
			t.Errorf("after reference replay: balance %d", m.Balance)
		}

		// Too few points: 422 with details, nothing held.
		r = e.do(t, "POST", "/v1/members/poor/redemptions", e.memberTok(t, "poor"), map[string]any{"option_id": "merch-luggage-tag"})
		p := r.problem(t)
		if r.status != 422 || p["code"] != "insufficient_points" || p["points_short"] != float64(1400) || p["current_balance"] != float64(100) {
			t.Errorf("insufficient: %d %s", r.status, r.raw)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_holds WHERE member_id = 'poor'`); n != 0 {
			t.Errorf("%d holds for a refused redemption", n)
		}

		for _, c := range []struct {
			name, tok string
			body      any
			status    int
			code      string
		}{
			{"unknown option", tok, map[string]any{"option_id": "nope"}, 404, "unknown_redemption_option"},
			{"no option", tok, map[string]any{}, 422, "missing_option_id"},
			{"unknown field", tok, map[string]any{"option_id": "merch-luggage-tag", "points": 1}, 400, "unknown_field"},
			{"other member", e.memberTok(t, "poor"), map[string]any{"option_id": "merch-luggage-tag"}, 403, "forbidden"},
		} {
			r := e.do(t, "POST", "/v1/members/m/redemptions", c.tok, c.body)
			if r.status != c.status || r.problem(t)["code"] != c.code {
				t.Errorf("%s: %d %s", c.name, r.status, r.raw)
			}
		}

		// Fulfilment failure (admin fault setting): 502, balance unchanged.
		before := e.get(t, "m")
		r = e.do(t, "PUT", "/v1/admin/faults/fulfillment", e.admin(t), map[string]any{"fail": true})
		if r.status != 200 || !strings.Contains(string(r.raw), `"source":"admin"`) {
			t.Fatalf("set fault: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "PUT", "/v1/admin/faults/fulfillment", tok, map[string]any{"fail": true}); r.status != 403 {
			t.Errorf("member sets a fault: %d", r.status)
		}
		r = e.doKey(t, "POST", "/v1/members/m/redemptions", tok, "k2", map[string]any{"option_id": "upgrade-segment"})
		if r.status != 502 || r.problem(t)["code"] != "fulfillment_failed" {
			t.Errorf("failed fulfilment: %d %s", r.status, r.raw)
		}
		if m := e.get(t, "m"); m.Balance != before.Balance || m.Pending != 0 {
			t.Errorf("after failed fulfilment: balance %d pending %d, want %d 0", m.Balance, m.Pending, before.Balance)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_redemptions WHERE status = 'failed'`); n != 1 {
			t.Errorf("%d failed redemptions recorded, want 1", n)
		}
		// The fault cleared, the same key may try again (a 5xx frees it).
		e.do(t, "PUT", "/v1/admin/faults/fulfillment", e.admin(t), map[string]any{"fail": false})
		r = e.doKey(t, "POST", "/v1/members/m/redemptions", tok, "k2", map[string]any{"option_id": "upgrade-segment"})
		if r.status != 201 {
			t.Errorf("retry after fault: %d %s", r.status, r.raw)
		}
		e.verify(t)
	})
}

func TestRedemptionOptions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "g")
		e.earn(t, "g", hotel("h1", 500_000)) // gold
		var out struct {
			Options []loyalty.RedemptionOptionJSON `json:"options"`
		}
		r := e.do(t, "GET", "/v1/redemption-options", "", nil)
		if r.status != 200 {
			t.Fatalf("options: %d %s", r.status, r.raw)
		}
		r.json(t, &out)
		if len(out.Options) != 11 || out.Options[0].ID != "award-domestic-economy" || out.Options[0].Points != 12500 || out.Options[0].Cost != nil {
			t.Errorf("public options: %s", r.raw)
		}
		out.Options = nil
		e.do(t, "GET", "/v1/redemption-options", e.memberTok(t, "g"), nil).json(t, &out)
		if c := out.Options[0].Cost; c == nil || c.Final != 11875 || c.Discount != 625 || c.DiscountBP != 500 {
			t.Errorf("member cost: %+v", c)
		}
	})
}

// TestFulfillmentTimeout: a provider slower than half the hold TTL is given
// up on, and the hold voided.
func TestFulfillmentTimeout(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		svc, err := loyalty.New(loyalty.Config{DB: d, Program: e.svc.Program(), Now: e.clock.Now, HoldTTL: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e.member(t, "m")
		e.fund(t, "m", 5000)
		if _, err := svc.SetFulfillmentFault(ctx, false, 5000); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = svc.Redeem(ctx, "m", "merch-luggage-tag", "")
		wantCode(t, "slow fulfilment", err, "fulfillment_failed")
		if time.Since(start) > 3*time.Second {
			t.Errorf("redeem waited %v for a slow provider", time.Since(start))
		}
		if m := e.get(t, "m"); m.Balance != 5000 || m.Pending != 0 {
			t.Errorf("balance %d pending %d", m.Balance, m.Pending)
		}
		e.verify(t)
	})
}

// TestHoldReaper: a hold left pending (a crashed redemption) is voided once
// past its expiry, with the redemption it belonged to.
func TestHoldReaper(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.fund(t, "m", 5000)
		if _, err := e.svc.HoldPoints(ctx, "m", 1200, "crashed-checkout"); err != nil {
			t.Fatal(err)
		}
		if n, err := e.svc.VoidExpiredHolds(ctx, e.clock.Now()); err != nil || n != 0 {
			t.Errorf("before expiry: voided %d, %v", n, err)
		}
		e.clock.Set(startTime.Add(time.Hour))
		problems, err := e.svc.Verify(ctx)
		if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "still pending") {
			t.Errorf("verify before the reaper: %q %v", problems, err)
		}
		if n, err := e.svc.VoidExpiredHolds(ctx, e.clock.Now()); err != nil || n != 1 {
			t.Errorf("after expiry: voided %d, %v", n, err)
		}
		if n, err := e.svc.VoidExpiredHolds(ctx, e.clock.Now()); err != nil || n != 0 {
			t.Errorf("second run: voided %d, %v", n, err)
		}
		if m := e.get(t, "m"); m.Balance != 5000 || m.Pending != 0 {
			t.Errorf("balance %d pending %d", m.Balance, m.Pending)
		}
		e.verify(t)
	})
}
