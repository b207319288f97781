package loyalty_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// lot is a lot's remaining points and expiry, as a merge must keep them.
type lot struct {
	Remaining int64
	Expires   int64
}

func (e *env) lotsWithExpiry(t testing.TB, id string) []lot {
	t.Helper()
	rows, err := e.d.Read().QueryContext(context.Background(),
		`SELECT remaining, expires_at FROM loyalty_lots WHERE member_id = $1 AND remaining > 0 ORDER BY expires_at, remaining`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []lot
	for rows.Next() {
		var l lot
		if err := rows.Scan(&l.Remaining, &l.Expires); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortLots(ls []lot) []lot {
	slices.SortFunc(ls, func(a, b lot) int {
		if a.Expires != b.Expires {
			return int(a.Expires - b.Expires)
		}
		return int(a.Remaining - b.Remaining)
	})
	return ls
}

// wantMerged requires r to be the 410 of a member merged into into.
func wantMerged(t testing.TB, what string, r resp, into string) {
	t.Helper()
	if r.status != http.StatusGone {
		t.Errorf("%s: status %d, want 410; body %s", what, r.status, r.raw)
		return
	}
	p := r.problem(t)
	if p["code"] != loyalty.CodeMemberMerged || p["merged_into"] != into {
		t.Errorf("%s: problem %v, want code %s with merged_into %q", what, p, loyalty.CodeMemberMerged, into)
	}
}

// TestMergeMovesBalanceLotsAndStatus merges a duplicate with lots of three
// expiry dates and a higher tier into another member, over HTTP: exactly its
// balance, its lots (expiry kept) and its status points move, by one
// balanced merge transaction with an audit record; the survivor takes the
// higher tier; the duplicate answers 410 with the pointer on its routes and
// cannot be merged again; a replay of the key answers the same; verify is
// clean.
func TestMergeMovesBalanceLotsAndStatus(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "dup")
		e.member(t, "keep")
		e.earn(t, "dup", hotel("h1", 2750000)) // enough status points for a tier upgrade
		e.clock.Set(startTime.Add(40 * 24 * time.Hour))
		e.earn(t, "dup", flight("f1", 1200, "Y"))
		e.earn(t, "keep", flight("k1", 800, "Y"))
		e.clock.Set(startTime.Add(80 * 24 * time.Hour))
		e.earn(t, "dup", flight("f2", 900, "Y"))
		dup, keep := e.get(t, "dup"), e.get(t, "keep")
		wantLots := sortLots(append(e.lotsWithExpiry(t, "dup"), e.lotsWithExpiry(t, "keep")...))
		if len(e.lotsWithExpiry(t, "dup")) != 3 {
			t.Fatalf("dup has lots %v, want 3", e.lotsWithExpiry(t, "dup"))
		}
		if dup.Tier == keep.Tier {
			t.Fatalf("setup: both members are %s; the test needs the duplicate's tier higher", dup.Tier)
		}

		admin := e.admin(t)
		r := e.doKey(t, "POST", "/v1/admin/members/dup/merge", admin, "merge-1", map[string]any{"into": "keep", "reason": "duplicate signup"})
		if r.status != http.StatusOK {
			t.Fatalf("merge: %d %s", r.status, r.raw)
		}
		var res loyalty.MergeResult
		r.json(t, &res)
		if res.Points != dup.Balance || res.StatusPoints != dup.StatusPoints || len(res.Lots) != 3 || res.MergedInto != "keep" {
			t.Errorf("merge result %+v, want points %d status %d 3 lots", res, dup.Balance, dup.StatusPoints)
		}
		after := e.get(t, "keep")
		if after.Balance != dup.Balance+keep.Balance || after.StatusPoints != dup.StatusPoints+keep.StatusPoints {
			t.Errorf("survivor balance %d status %d, want %d and %d", after.Balance, after.StatusPoints,
				dup.Balance+keep.Balance, dup.StatusPoints+keep.StatusPoints)
		}
		if after.Tier != e.svc.Program().TierFor(after.StatusPoints).ID && after.Tier != dup.Tier {
			t.Errorf("survivor tier %s, want the duplicate's %s or what its status points reach", after.Tier, dup.Tier)
		}
		if after.Tier == keep.Tier {
			t.Errorf("survivor stayed %s; the duplicate's tier %s is higher", after.Tier, dup.Tier)
		}
		if diff := cmp.Diff(wantLots, sortLots(e.lotsWithExpiry(t, "keep"))); diff != "" {
			t.Errorf("survivor's lots (-want +got):\n%s", diff)
		}
		if got := e.lotsWithExpiry(t, "dup"); len(got) != 0 {
			t.Errorf("duplicate still has lots %v", got)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_postings p JOIN loyalty_transactions x ON x.id = p.transaction_id
			WHERE x.type = 'merge' AND x.id = $1`, res.TransactionID); n != 2 {
			t.Errorf("merge transaction has %d postings, want 2 (both member legs)", n)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_member_audit WHERE member_id = 'dup' AND action = 'merge' AND actor <> ''`); n != 1 {
			t.Errorf("%d merge audit records, want 1", n)
		}
		e.verify(t)

		// The same key replays the stored answer.
		again := e.doKey(t, "POST", "/v1/admin/members/dup/merge", admin, "merge-1", map[string]any{"into": "keep", "reason": "duplicate signup"})
		if again.status != http.StatusOK || string(again.raw) != string(r.raw) {
			t.Errorf("replay: %d %s, want the first answer", again.status, again.raw)
		}
		// The duplicate is gone everywhere, with the pointer.
		wantMerged(t, "GET member", e.do(t, "GET", "/v1/members/dup", admin, nil), "keep")
		wantMerged(t, "GET member (own token)", e.do(t, "GET", "/v1/members/dup", e.memberTok(t, "dup"), nil), "keep")
		wantMerged(t, "statement", e.do(t, "GET", "/v1/members/dup/statement", admin, nil), "keep")
		wantMerged(t, "earn", e.do(t, "POST", "/v1/members/dup/activities", e.service(t),
			map[string]any{"type": "flight", "external_id": "late", "flight": map[string]any{"distance_miles": 500, "fare_class": "Y", "cabin": "economy"}}), "keep")
		wantMerged(t, "redeem", e.do(t, "POST", "/v1/members/dup/redemptions", e.memberTok(t, "dup"), map[string]any{"option_id": e.svc.Program().Options()[0].ID}), "keep")
		wantMerged(t, "adjust", e.do(t, "POST", "/v1/admin/members/dup/adjustments", admin, map[string]any{"points": 5, "reason": "x"}), "keep")
		wantMerged(t, "merge again", e.do(t, "POST", "/v1/admin/members/dup/merge", admin, map[string]any{"into": "keep", "reason": "again"}), "keep")
		if r := e.do(t, "POST", "/v1/admin/members/other/merge", admin, map[string]any{"into": "dup", "reason": "x"}); r.status != http.StatusNotFound {
			t.Errorf("merge of an unknown member: %d %s", r.status, r.raw)
		}
		e.member(t, "third")
		if r := e.do(t, "POST", "/v1/admin/members/third/merge", admin, map[string]any{"into": "dup", "reason": "x"}); r.status != http.StatusConflict || r.problem(t)["code"] != "merge_target_merged" {
			t.Errorf("merge into a merged member: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/admin/members/third/merge", admin, map[string]any{"into": "third", "reason": "x"}); r.status != http.StatusUnprocessableEntity {
			t.Errorf("merge into itself: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/admin/members/third/merge", e.service(t), map[string]any{"into": "keep", "reason": "x"}); r.status != http.StatusForbidden {
			t.Errorf("merge by a service: %d %s, want 403", r.status, r.raw)
		}
		e.verify(t)
	})
}

// TestMergeRefusesOpenHoldsAndMovesDebts: a duplicate with a pending hold is
// not merged (409, nothing changes); a debt moves to the survivor, whose lots
// give up what it covers; a survivor's debt is repaid from the merged lots.
func TestMergeRefusesOpenHoldsAndMovesDebts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		ctx := context.Background()
		for _, id := range []string{"held", "a", "owes", "b", "rich", "owed"} {
			e.member(t, id)
		}
		e.fund(t, "held", 1000)
		hold, err := e.svc.HoldPoints(ctx, "held", 300, "order-1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.MergeMember(ctx, "held", "a", "dup")
		wantCode(t, "merge with a pending hold", err, loyalty.CodeMemberHasOpenHolds)
		if errs.KindOf(err) != errs.Conflict {
			t.Errorf("kind %s, want conflict", errs.KindOf(err))
		}
		if m := e.get(t, "held"); m.Balance != 700 || m.Pending != 300 {
			t.Errorf("refused merge changed the member: %+v", m)
		}
		if err := e.svc.VoidPointsHold(ctx, hold); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.MergeMember(ctx, "held", "a", "dup"); err != nil {
			t.Fatalf("merge after the void: %v", err)
		}
		if m := e.get(t, "a"); m.Balance != 1000 {
			t.Errorf("a: balance %d, want 1000", m.Balance)
		}

		// A debt moves: owes is at -100, b has 500 in lots.
		e.fund(t, "owes", -100)
		e.fund(t, "b", 500)
		if _, err := e.svc.MergeMember(ctx, "owes", "b", "dup"); err != nil {
			t.Fatal(err)
		}
		if m := e.get(t, "b"); m.Balance != 400 || !slices.Equal(e.lotsOf(t, "b"), []int64{400}) {
			t.Errorf("b: balance %d lots %v, want 400 and [400]", m.Balance, e.lotsOf(t, "b"))
		}
		// The survivor's debt is repaid first: owed at -300, rich has 500.
		e.fund(t, "owed", -300)
		e.fund(t, "rich", 500)
		res, err := e.svc.MergeMember(ctx, "rich", "owed", "dup")
		if err != nil {
			t.Fatal(err)
		}
		if m := e.get(t, "owed"); m.Balance != 200 || !slices.Equal(e.lotsOf(t, "owed"), []int64{200}) || res.NewBalance != 200 {
			t.Errorf("owed: balance %d lots %v result %d, want 200, [200], 200", m.Balance, e.lotsOf(t, "owed"), res.NewBalance)
		}
		e.verify(t)
	})
}

// TestMergeRacesEarning earns for a duplicate from several goroutines while
// it is merged: every earning that succeeded is in the survivor's balance
// (none lost, none twice), every other one was refused 410 with the
// pointer, and verify is clean.
func TestMergeRacesEarning(t *testing.T) {
	const (
		rounds  = 6
		earners = 6
		perG    = 5
	)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		ctx := context.Background()
		var totalEarned, totalGone int
		for r := range rounds {
			dup, keep := fmt.Sprintf("dup%d", r), fmt.Sprintf("keep%d", r)
			e.member(t, dup)
			e.member(t, keep)
			e.earn(t, keep, flight(fmt.Sprintf("%s-own", keep), 700, "Y"))
			var (
				mu     sync.Mutex
				earned int64
				gone   int
				wg     sync.WaitGroup
				errc   = make(chan error, earners*perG+1)
			)
			for g := range earners {
				wg.Go(func() {
					for k := range perG {
						res, err := e.svc.Earn(ctx, dup, flight(fmt.Sprintf("%s-%d-%d", dup, g, k), int64(500+g*10+k), "Y"))
						mu.Lock()
						switch {
						case err == nil:
							earned += res.TotalPointsEarned
						case errs.Is(err, loyalty.CodeMemberMerged):
							gone++
						default:
							errc <- err
						}
						mu.Unlock()
					}
				})
			}
			wg.Go(func() {
				time.Sleep(time.Duration(r) * time.Millisecond) // vary where the merge lands among the earnings
				if _, err := e.svc.MergeMember(ctx, dup, keep, "race"); err != nil {
					errc <- fmt.Errorf("merge: %w", err)
				}
			})
			wg.Wait()
			close(errc)
			totalGone += gone
			totalEarned += earners*perG - gone
			for err := range errc {
				t.Error(err)
			}
			own := e.count(t, `SELECT COALESCE(SUM(p.amount), 0) FROM loyalty_postings p JOIN loyalty_transactions x ON x.id = p.transaction_id
				WHERE p.account = $1 AND x.type <> 'merge'`, "member:"+keep)
			if m := e.get(t, keep); m.Balance != own+earned {
				t.Errorf("round %d: survivor balance %d, want its own %d + %d earned by the duplicate (%d earnings refused)", r, m.Balance, own, earned, gone)
			}
			_, err := e.svc.GetMember(ctx, dup)
			var pe *errs.Error
			if !errors.As(err, &pe) || pe.Code != loyalty.CodeMemberMerged {
				t.Errorf("round %d: duplicate after merge: %v", r, err)
			}
		}
		t.Logf("%d earnings before the merges, %d refused after", totalEarned, totalGone)
		if totalGone == 0 {
			t.Error("no earning was refused: no merge landed among the earnings, the race is not exercised")
		}
		e.verify(t)
	})
}

// TestEraseMergedDuplicate: a merged duplicate keeps its name and email
// until it is erased; erasing it works although every other route of it
// answers 410, a second erasure is a no-op, no audit record holds the data,
// and an erased member takes no merges.
func TestEraseMergedDuplicate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		ctx := context.Background()
		e.member(t, "dup")
		e.member(t, "keep")
		e.fund(t, "dup", 300)
		if _, err := e.svc.MergeMember(ctx, "dup", "keep", "duplicate"); err != nil {
			t.Fatal(err)
		}
		pd, err := e.svc.ReadPersonalData(ctx, "dup")
		if err != nil || pd.Email != "dup@example.com" || pd.Erased {
			t.Fatalf("merged duplicate's data: %+v %v", pd, err)
		}
		res, err := e.svc.ErasePersonalData(ctx, "dup", nil)
		if err != nil || res.Already {
			t.Fatalf("erase: %+v %v", res, err)
		}
		if pd, _ := e.svc.ReadPersonalData(ctx, "dup"); pd.Name != "" || pd.Email != "" || !pd.Erased {
			t.Errorf("after erasure: %+v", pd)
		}
		if again, err := e.svc.ErasePersonalData(ctx, "dup", nil); err != nil || !again.Already {
			t.Errorf("second erasure: %+v %v, want Already", again, err)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_member_audit WHERE details LIKE '%example.com%' OR details LIKE '%Member dup%'`); n != 0 {
			t.Errorf("%d audit records hold personal data", n)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_member_audit WHERE member_id = 'dup'`); n != 2 {
			t.Errorf("%d audit records of dup, want 2 (merge, erase)", n)
		}
		e.member(t, "gone")
		if _, err := e.svc.ErasePersonalData(ctx, "gone", nil); err != nil {
			t.Fatal(err)
		}
		e.member(t, "late")
		_, err = e.svc.MergeMember(ctx, "late", "gone", "x")
		wantCode(t, "merge into an erased member", err, "merge_target_erased")
		e.verify(t)
	})
}

// A duplicate whose purchase points still pend is merged only after they
// vest: a refund in the return window must still find them to cancel.
func TestMergeWaitsForPendingPoints(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "dup")
		e.member(t, "keep")
		res, err := e.svc.EarnPurchase(ctx, "dup", "o-1", usd(10_000)) // 100 points, pending 30 days
		if err != nil {
			t.Fatal(err)
		}
		if res.PendingPoints == 0 || res.VestsAt == nil {
			t.Fatalf("earn %+v: want pending points", res)
		}
		_, err = e.svc.MergeMember(ctx, "dup", "keep", "dup")
		wantCode(t, "merge with pending points", err, loyalty.CodeMemberHasPendingPoints)
		if m := e.get(t, "dup"); e.pending(t, "dup") != res.PendingPoints {
			t.Errorf("refused merge changed the member: %+v pending %d", m, e.pending(t, "dup"))
		}
		e.clock.Set(*res.VestsAt)
		e.vest(t)
		if _, err := e.svc.MergeMember(ctx, "dup", "keep", "dup"); err != nil {
			t.Fatalf("merge after vesting: %v", err)
		}
		if m := e.get(t, "keep"); m.Balance != res.PendingPoints {
			t.Errorf("keep: balance %d, want %d", m.Balance, res.PendingPoints)
		}
		e.verify(t)
	})
}
