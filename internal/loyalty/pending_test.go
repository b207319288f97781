package loyalty_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// instantVesting is the default program with every activity type vesting at
// once, for tests about something other than when points vest.
func instantVesting() *program.Program {
	p := program.Default()
	p.Vesting = program.Vesting{}
	return p
}

func (e *env) pending(t testing.TB, id string) int64 {
	t.Helper()
	n, err := e.svc.PendingPoints(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) vest(t testing.TB) loyalty.VestReport {
	t.Helper()
	rep, err := e.svc.VestBatch(context.Background(), loyalty.VestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestPurchasePendsThenVests: a purchase's points pend for the 30-day
// return window — not spendable, not transferable, no tier credit — and
// the vest job, run twice, vests them once with their status points and a
// points.earned event.
func TestPurchasePendsThenVests(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.member(t, "friend")
		res, err := e.svc.EarnPurchase(ctx, "m", "o-1", usd(3_000_000)) // 30,000 points: silver once vested
		if err != nil {
			t.Fatal(err)
		}
		want := startTime.AddDate(0, 0, 30)
		if res.PendingPoints != 30_000 || res.VestsAt == nil || !res.VestsAt.Equal(want) || res.NewBalance != 0 || res.NewTier != "" {
			t.Fatalf("earn %+v: want 30000 pending until %v, balance 0, no upgrade", res, want)
		}
		m := e.get(t, "m")
		if m.Balance != 0 || m.StatusPoints != 0 || m.Tier != "blue" || e.pending(t, "m") != 30_000 {
			t.Fatalf("member %+v pending %d", m, e.pending(t, "m"))
		}
		if n := len(eventstest.OfType(eventstest.All(t, d), events.PointsEarned)); n != 0 {
			t.Errorf("%d points.earned events while pending, want 0 (announced at vesting)", n)
		}
		e.verify(t)

		// Not spendable, not transferable, not holdable.
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", "r-1"); errs.CodeOf(err) != "insufficient_points" {
			t.Errorf("redeem while pending: %v", err)
		}
		if _, err := e.svc.Transfer(ctx, "m", loyalty.TransferRequest{ToMemberID: "friend", Points: 1000, Reference: "t-1"}); errs.CodeOf(err) != "insufficient_points" {
			t.Errorf("transfer while pending: %v", err)
		}
		if _, err := e.svc.HoldPoints(ctx, "m", 100, "checkout:1"); errs.CodeOf(err) != "insufficient_points" {
			t.Errorf("hold while pending: %v", err)
		}

		// A day before the window ends: nothing vests.
		e.clock.Set(want.Add(-24 * time.Hour))
		if rep := e.vest(t); rep.EarningsVested != 0 || rep.Candidates != 0 {
			t.Errorf("early run %+v", rep)
		}
		e.clock.Set(want)
		for i, wantVested := range []int{1, 0} {
			rep := e.vest(t)
			if rep.EarningsVested != wantVested || rep.TotalPointsVested != int64(wantVested)*30_000 {
				t.Errorf("run %d: %+v, want %d earnings vested", i+1, rep, wantVested)
			}
			e.verify(t)
		}
		m = e.get(t, "m")
		if m.Balance != 30_000 || m.StatusPoints != 30_000 || m.Tier != "silver" || e.pending(t, "m") != 0 {
			t.Fatalf("after vesting: %+v pending %d; want 30000 spendable, 30000 status points, silver", m, e.pending(t, "m"))
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions WHERE type = 'vest' AND member_id = 'm'`); n != 1 {
			t.Errorf("%d vest transactions", n)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_lots WHERE member_id = 'm' AND remaining = 30000`); n != 1 {
			t.Errorf("%d lots of the vested points", n)
		}
		evs := eventstest.All(t, d)
		earned := eventstest.OfType(evs, events.PointsEarned)
		if len(earned) != 1 {
			t.Fatalf("%d points.earned events after vesting, want 1", len(earned))
		}
		if got := eventstest.Data[events.PointsEarnedData](t, earned[0]); got.TransactionID != res.TransactionID || got.Points != 30_000 ||
			got.Balance != 30_000 || got.OrderID != "o-1" || got.Tier != "silver" {
			t.Errorf("points.earned %+v", got)
		}
		if tc := eventstest.OfType(evs, events.TierChanged); len(tc) != 1 {
			t.Errorf("%d tier.changed events, want the upgrade at vesting", len(tc))
		}
		// Now spendable.
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", "r-2"); err != nil {
			t.Errorf("redeem after vesting: %v", err)
		}
		e.verify(t)

		// The spans: one per run, one per member.
		byName := spansByName(t, e.spans.Ended())
		if len(byName["loyalty.vesting_batch"]) != 3 || len(byName["loyalty.vest_member_points"]) != 1 {
			t.Errorf("%d vesting_batch spans (want 3), %d vest_member_points (want 1)",
				len(byName["loyalty.vesting_batch"]), len(byName["loyalty.vest_member_points"]))
		}
	})
}

// TestRefundDuringPendingCancels: a refund inside the return window
// cancels the pending points — the balance is untouched, never negative —
// gives the promotion's award back, and a second refund changes nothing; a
// refund after vesting takes the points back as before.
func TestRefundDuringPendingCancels(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.promo(t, program.Promotion{ID: "shop2x", Name: "Double shop", ActivityTypes: []string{program.ActivityPurchase},
			MultiplierBP: 20000, CapTimes: 1, Start: startTime.AddDate(0, -1, 0), End: startTime.AddDate(1, 0, 0)})
		first, err := e.svc.EarnPurchase(ctx, "m", "o-1", usd(10_000))
		if err != nil || first.PromoBonus != 100 || first.PendingPoints != 200 {
			t.Fatalf("earn %+v %v", first, err)
		}
		e.verify(t)
		if err := e.svc.ReversePurchase(ctx, "m", "o-1"); err != nil {
			t.Fatal(err)
		}
		if m := e.get(t, "m"); m.Balance != 0 || e.pending(t, "m") != 0 {
			t.Fatalf("after refund: balance %d pending %d, want 0 0", m.Balance, e.pending(t, "m"))
		}
		again, err := e.svc.ReverseTransaction(ctx, first.TransactionID, "again")
		if err != nil || !again.Replayed || again.PendingPointsCancelled != 200 || again.PointsReversed != 0 {
			t.Errorf("second reversal %+v %v", again, err)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions WHERE type = 'reversal'`); n != 1 {
			t.Errorf("%d reversal transactions, want 1", n)
		}
		// The promotion's one use was given back: the next purchase gets it.
		second, err := e.svc.EarnPurchase(ctx, "m", "o-2", usd(10_000))
		if err != nil || second.PromoBonus != 100 {
			t.Errorf("second purchase %+v %v: the cancelled earning's award was not given back", second, err)
		}
		// Cancelled points never vest.
		e.clock.Set(startTime.AddDate(0, 0, 31))
		if rep := e.vest(t); rep.EarningsVested != 1 || rep.TotalPointsVested != 200 {
			t.Errorf("vest %+v, want only the second purchase", rep)
		}
		if m := e.get(t, "m"); m.Balance != 200 {
			t.Errorf("balance %d, want 200", m.Balance)
		}
		e.verify(t)
		// After vesting a refund takes the points back from the balance.
		if err := e.svc.ReversePurchase(ctx, "m", "o-2"); err != nil {
			t.Fatal(err)
		}
		if m := e.get(t, "m"); m.Balance != 0 || m.StatusPoints != 0 {
			t.Errorf("after refund of vested: balance %d status %d, want 0 0", m.Balance, m.StatusPoints)
		}
		e.verify(t)
	})
}

// TestHotelAndFlightVestOnTheirDates: hotel points pend until the end of
// the check-out date and flight points until the end of the flight's date,
// when in the future; without a date (or with a past one) they vest at once.
func TestHotelAndFlightVestOnTheirDates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		svc := e.service(t)
		post := func(body map[string]any) map[string]any {
			t.Helper()
			r := e.do(t, "POST", "/v1/members/m/activities", svc, body)
			if r.status != http.StatusCreated {
				t.Fatalf("%v: %d %s", body, r.status, r.raw)
			}
			var res map[string]any
			r.json(t, &res)
			return res
		}
		hotelRes := post(activity("hotel", "h1", map[string]any{"amount": usdJSON(20_000), "nights": 2, "check_out": "2026-03-12"}))
		flightRes := post(activity("flight", "f1", map[string]any{"distance_miles": 1000, "fare_class": "Y", "date": "2026-03-20"}))
		nowRes := post(activity("hotel", "h2", map[string]any{"amount": usdJSON(10_000), "nights": 1, "check_out": "2026-03-09"}))
		if hotelRes["pending_points"] != float64(2000) || hotelRes["vests_at"] != "2026-03-13T00:00:00Z" {
			t.Errorf("hotel %v", hotelRes)
		}
		if flightRes["pending_points"] != float64(1000) || flightRes["vests_at"] != "2026-03-21T00:00:00Z" {
			t.Errorf("flight %v", flightRes)
		}
		if _, ok := nowRes["pending_points"]; ok || nowRes["new_balance"] != float64(1000) {
			t.Errorf("past check-out %v, want vested at once", nowRes)
		}
		r := e.do(t, "POST", "/v1/members/m/activities", svc, activity("hotel", "h3", map[string]any{"amount": usdJSON(100), "check_out": "12/03/2026"}))
		if p := r.problem(t); r.status != 422 || p["code"] != "invalid_activity" {
			t.Errorf("bad check_out: %d %s", r.status, r.raw)
		}
		e.verify(t)

		e.clock.Set(time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC))
		if rep := e.vest(t); rep.TotalPointsVested != 2000 {
			t.Errorf("at check-out's end %+v, want the hotel's 2000", rep)
		}
		e.clock.Set(time.Date(2026, 3, 21, 0, 0, 0, 0, time.UTC))
		if rep := e.vest(t); rep.TotalPointsVested != 1000 {
			t.Errorf("after the flight %+v, want its 1000", rep)
		}
		if m := e.get(t, "m"); m.Balance != 4000 || m.StatusPoints != 4000 || e.pending(t, "m") != 0 {
			t.Errorf("member %+v pending %d", m, e.pending(t, "m"))
		}
		e.verify(t)
	})
}

// TestPointsEndpoint: GET /v1/members/{id}/points shows available, held,
// pending by vesting date and lots by expiry, for the member or an admin.
func TestPointsEndpoint(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, lotProgram(36))
		e.member(t, "m")
		e.member(t, "other")
		e.earn(t, "m", hotel("h1", 50_000)) // 5000 now, lot expires 2029-04-01
		e.clock.Set(startTime.AddDate(0, 4, 0))
		e.earn(t, "m", hotel("h2", 20_000)) // 2000, lot expires 2029-10-01
		if _, err := e.svc.HoldPoints(ctx, "m", 300, "checkout:1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.EarnPurchase(ctx, "m", "o-2", usd(7_000)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.EarnPurchase(ctx, "m", "o-1", usd(5_000)); err != nil {
			t.Fatal(err)
		}

		var p loyalty.Points
		r := e.do(t, "GET", "/v1/members/m/points", e.memberTok(t, "m"), nil)
		if r.status != 200 {
			t.Fatalf("points: %d %s", r.status, r.raw)
		}
		r.json(t, &p)
		if p.Available != 6700 || p.Held != 300 || p.PendingTotal != 120 || len(p.Pending) != 2 || p.ExpiryPolicy != "lot" {
			t.Fatalf("points %s", r.raw)
		}
		if p.Pending[0].Points != 70 || p.Pending[1].Points != 50 || !p.Pending[0].VestsAt.Equal(startTime.AddDate(0, 4, 30)) {
			t.Errorf("pending %+v, want o-2's 70 then o-1's 50, from %v", p.Pending, startTime.AddDate(0, 4, 30))
		}
		// Lots, soonest-expiring first: the hold's 300 came out of the first.
		if len(p.Expiring) != 2 || p.Expiring[0].Points+p.Expiring[1].Points != 7000 ||
			!p.Expiring[0].ExpiresAt.Equal(time.Date(2029, 4, 1, 0, 0, 0, 0, time.UTC)) ||
			!p.Expiring[1].ExpiresAt.Equal(time.Date(2029, 10, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("expiring %+v", p.Expiring)
		}
		if r := e.do(t, "GET", "/v1/members/m/points", e.admin(t), nil); r.status != 200 {
			t.Errorf("admin: %d", r.status)
		}
		if r := e.do(t, "GET", "/v1/members/m/points", e.memberTok(t, "other"), nil); r.status != 403 {
			t.Errorf("another member: %d, want 403", r.status)
		}
		if r := e.do(t, "GET", "/v1/members/ghost/points", e.admin(t), nil); r.status != 404 {
			t.Errorf("unknown member: %d, want 404", r.status)
		}
		// The member record and statement show the pending points too.
		var mj loyalty.MemberJSON
		e.do(t, "GET", "/v1/members/m", e.memberTok(t, "m"), nil).json(t, &mj)
		if mj.PendingPoints != 120 || mj.Balance != 6700 {
			t.Errorf("member %+v", mj)
		}
		var st loyalty.Statement
		e.do(t, "GET", "/v1/members/m/statement", e.memberTok(t, "m"), nil).json(t, &st)
		if len(st.Pending) != 2 || st.Pending[0].Points != 70 {
			t.Errorf("statement pending %+v", st.Pending)
		}
		e.verify(t)
	})
}

// TestStatementTypeFilter: ?type= keeps the movements of the types given
// (comma-separated or repeated); an unknown type is 400 invalid_type.
func TestStatementTypeFilter(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 50_000))
		e.fund(t, "m", 100)
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", "r-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.EarnPurchase(ctx, "m", "o-1", usd(5_000)); err != nil {
			t.Fatal(err)
		}
		e.clock.Set(startTime.AddDate(0, 0, 30))
		e.vest(t)
		tok := e.memberTok(t, "m")
		types := func(path string) []string {
			t.Helper()
			r := e.do(t, "GET", path, tok, nil)
			if r.status != 200 {
				t.Fatalf("%s: %d %s", path, r.status, r.raw)
			}
			var st loyalty.Statement
			r.json(t, &st)
			var out []string
			for _, en := range st.Entries {
				out = append(out, en.Type)
			}
			return out
		}
		for path, want := range map[string][]string{
			// The vested purchase shows as an earning.
			"/v1/members/m/statement":                           {"earn", "redeem", "adjustment", "earn"},
			"/v1/members/m/statement?type=earn,redeem":          {"earn", "redeem", "earn"},
			"/v1/members/m/statement?type=adjustment&type=earn": {"earn", "adjustment", "earn"},
			"/v1/members/m/statement?type=expire":               nil,
			"/v1/members/m/statement?type=redeem&limit=1":       {"redeem"},
			"/v1/members/m/statement?type=adjustment,reversal":  {"adjustment"},
		} {
			got := types(path)
			if len(got) != len(want) {
				t.Errorf("%s: %v, want %v", path, got, want)
				continue
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s: %v, want %v", path, got, want)
					break
				}
			}
		}
		for _, bad := range []string{"type=earn,bogus", "type=", "type=EARN", "type=vest"} {
			r := e.do(t, "GET", "/v1/members/m/statement?"+bad, tok, nil)
			if p := r.problem(t); r.status != 400 || p["code"] != "invalid_type" {
				t.Errorf("%s: %d %s, want 400 invalid_type", bad, r.status, r.raw)
			}
		}
	})
}

// TestVestConcurrentRunners: runners on several replicas vesting at once
// vest each pending earning exactly once.
func TestVestConcurrentRunners(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		var want int64
		for i, id := range []string{"a", "b", "c"} {
			e.member(t, id)
			for j := range 3 {
				res, err := e.svc.EarnPurchase(ctx, id, id+"-"+string(rune('0'+j)), usd(int64(1000*(i+1)*(j+1))))
				if err != nil {
					t.Fatal(err)
				}
				want += res.PendingPoints
			}
		}
		e.clock.Set(startTime.AddDate(0, 0, 30))
		const runners = 6
		var (
			mu    sync.Mutex
			total int64
			wg    sync.WaitGroup
		)
		for range runners {
			wg.Go(func() {
				rep, err := e.svc.VestBatch(ctx, loyalty.VestOptions{})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += rep.TotalPointsVested
				mu.Unlock()
			})
		}
		wg.Wait()
		if total != want {
			t.Errorf("runners vested %d points in all, want %d", total, want)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions WHERE type = 'vest'`); n != 9 {
			t.Errorf("%d vest transactions, want 9", n)
		}
		var sum int64
		for _, id := range []string{"a", "b", "c"} {
			sum += e.get(t, id).Balance
		}
		if sum != want {
			t.Errorf("balances sum to %d, want %d", sum, want)
		}
		e.verify(t)
	})
}
