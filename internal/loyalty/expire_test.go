package loyalty_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func lotProgram(months int) *program.Program {
	p := program.Default()
	p.Expiry = program.Expiry{Policy: program.ExpiryLot, Months: months}
	return p
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestExpireLotPolicy(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, lotProgram(1))
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 50_000)) // 5,000 on Mar 10: expires Jul 1
		e.clock.Set(date(2026, 6, 1))
		e.earn(t, "m", hotel("h2", 30_000)) // 3,000 on Jun 1: expires Oct 1
		e.clock.Set(date(2026, 6, 2))
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", ""); err != nil { // 1,500 from the soonest-expiring lot
			t.Fatal(err)
		}
		if got := fmt.Sprint(e.lotsOf(t, "m")); got != "[3500 3000]" {
			t.Errorf("lots after spending %s, want [3500 3000]", got)
		}
		// Just before the expiry instant nothing expires.
		rep, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 7, 1).Add(-time.Nanosecond)})
		if err != nil || rep.TotalPointsExpired != 0 {
			t.Errorf("before expiry: %+v %v", rep, err)
		}
		var calls []int
		rep, err = e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 7, 1), Progress: func(done, total int) { calls = append(calls, done, total) }})
		if err != nil || rep.AccountsAffected != 1 || rep.TotalPointsExpired != 3500 {
			t.Errorf("at expiry: %+v %v", rep, err)
		}
		if fmt.Sprint(calls) != "[1 1]" {
			t.Errorf("progress calls %v", calls)
		}
		if m := e.get(t, "m"); m.Balance != 3000 {
			t.Errorf("balance %d, want 3000", m.Balance)
		}
		rep, err = e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 7, 1)})
		if err != nil || rep.TotalPointsExpired != 0 || rep.AccountsAffected != 0 {
			t.Errorf("second run: %+v %v", rep, err)
		}
		// Held points do not expire; the rest of the lot does.
		e.clock.Set(date(2026, 9, 1))
		if _, err := e.svc.HoldPoints(ctx, "m", 1000, "checkout-1"); err != nil {
			t.Fatal(err)
		}
		rep, err = e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 10, 1)})
		if err != nil || rep.TotalPointsExpired != 2000 {
			t.Errorf("with a hold: %+v %v", rep, err)
		}
		if m := e.get(t, "m"); m.Balance != 0 || m.Pending != 1000 {
			t.Errorf("with a hold: balance %d pending %d", m.Balance, m.Pending)
		}
		e.clock.Set(date(2026, 10, 1))
		if n := e.count(t, `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings WHERE account = 'sink:expiry'`); n != 5500 {
			t.Errorf("sink:expiry holds %d, want 5500", n)
		}
		if _, err := e.svc.VoidExpiredHolds(ctx, date(2026, 10, 2)); err != nil {
			t.Fatal(err)
		}
		rep, err = e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 10, 2)})
		if err != nil || rep.TotalPointsExpired != 1000 {
			t.Errorf("after the hold was voided: %+v %v", rep, err)
		}
		e.clock.Set(date(2026, 10, 2))
		e.verify(t)
	})
}

func TestExpireInactivityPolicy(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d) // inactivity, 24 months
		for _, id := range []string{"idle", "active", "owing"} {
			e.member(t, id)
		}
		e.earn(t, "idle", hotel("h1", 40_000))
		e.earn(t, "idle", hotel("h2", 20_000))
		e.earn(t, "owing", hotel("h3", 20_000))
		e.clock.Set(program.AddMonths(startTime, 6))
		e.earn(t, "active", hotel("h4", 10_000))
		// owing spends and then loses the earning: a negative balance.
		if _, err := e.svc.Redeem(ctx, "owing", "merch-luggage-tag", ""); err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.Statement(ctx, "owing", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ReverseTransaction(ctx, res.Entries[len(res.Entries)-1].TransactionID, "hotel stay cancelled"); err != nil {
			t.Fatal(err)
		}

		expiry := program.AddMonths(startTime, 24)
		rep, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: expiry.Add(-time.Microsecond)})
		if err != nil || rep.TotalPointsExpired != 0 {
			t.Errorf("a moment early: %+v %v", rep, err)
		}
		rep, err = e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: expiry})
		if err != nil || rep.AccountsAffected != 1 || rep.TotalPointsExpired != 6000 {
			t.Errorf("at expiry: %+v %v", rep, err)
		}
		if m := e.get(t, "idle"); m.Balance != 0 {
			t.Errorf("idle balance %d", m.Balance)
		}
		if m := e.get(t, "active"); m.Balance != 1000 {
			t.Errorf("active balance %d", m.Balance)
		}
		if m := e.get(t, "owing"); m.Balance != -1500 {
			t.Errorf("owing balance %d, want -1500", m.Balance)
		}
		if rep, _ := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: expiry}); rep.TotalPointsExpired != 0 {
			t.Errorf("second run expired %d", rep.TotalPointsExpired)
		}
		e.clock.Set(expiry)
		e.verify(t)
	})
}

// TestExpireConcurrently runs two batch runners at once while members keep
// earning, in small chunks.
func TestExpireConcurrently(t *testing.T) {
	const members = 40
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, lotProgram(1))
		for i := range members {
			id := fmt.Sprintf("m%02d", i)
			e.member(t, id)
			e.earn(t, id, hotel("old-"+id, 10_000)) // 1,000 each, expiring Jul 1
		}
		now := date(2026, 7, 1)
		e.clock.Set(now) // new earnings expire Oct 1
		var (
			wg      sync.WaitGroup
			expired atomic.Int64
			touched atomic.Int64
		)
		for range 2 {
			wg.Go(func() {
				rep, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: now, ChunkSize: 7})
				if err != nil {
					t.Error(err)
				}
				expired.Add(rep.TotalPointsExpired)
				touched.Add(int64(rep.AccountsAffected))
			})
		}
		wg.Go(func() {
			for i := range members {
				id := fmt.Sprintf("m%02d", i)
				if _, err := e.svc.Earn(ctx, id, hotel("new-"+id, 5_000)); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Wait()
		if expired.Load() != members*1000 || touched.Load() != members {
			t.Errorf("expired %d points of %d accounts, want %d of %d", expired.Load(), touched.Load(), members*1000, members)
		}
		for i := range members {
			if m := e.get(t, fmt.Sprintf("m%02d", i)); m.Balance != 500 {
				t.Errorf("%s: balance %d, want 500 (the new earning)", m.ID, m.Balance)
			}
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions WHERE type = 'expire'`); n != members {
			t.Errorf("%d expire transactions, want %d", n, members)
		}
		e.verify(t)
	})
}

func TestExpireAPI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, lotProgram(1))
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 10_000))
		e.clock.Set(date(2026, 7, 1))
		r := e.do(t, "POST", "/v1/admin/expirations", e.admin(t), nil)
		var out loyalty.ExpireJSON
		r.json(t, &out)
		if r.status != 200 || out.AccountsAffected != 1 || out.TotalPointsExpired != 1000 {
			t.Errorf("expire: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/admin/expirations", e.service(t), nil); r.status != 403 {
			t.Errorf("service token: %d", r.status)
		}
	})
}

// TestExpireManyMembersInChunks: members expire a chunk per transaction, the
// writes split into several multi-row statements; every member loses exactly
// their own expired points (a partly spent lot, a member with nothing left,
// a member who owes points), the books stay balanced, and a second run
// changes nothing.
func TestExpireManyMembersInChunks(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, lotProgram(1))
		const n = 130
		want := map[string]int64{}
		var total int64
		for i := range n {
			id := fmt.Sprintf("c%03d", i)
			e.member(t, id)
			e.earn(t, id, hotel(id+"-a", int64(10_000+100*i))) // 1,000 + 10·i points
			e.earn(t, id, hotel(id+"-b", 20_000))              // 2,000 points
			balance := int64(3000 + 10*i)
			switch i % 10 {
			case 3: // spent part of the soonest lot
				if _, err := e.svc.Redeem(ctx, id, "merch-luggage-tag", ""); err != nil {
					t.Fatal(err)
				}
				balance -= 1500
			case 7: // owes points: nothing to expire
				if _, err := e.svc.Adjust(ctx, id, -(balance + 500), "chargeback"); err != nil {
					t.Fatal(err)
				}
				balance = 0
			}
			want[id] = balance
			total += balance
		}
		// c001's lots, soonest-expiring first, all of which expire whole.
		var wantUses []loyalty.LotUse
		rows, err := d.Read().QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots WHERE member_id = 'c001' AND remaining > 0
			ORDER BY expires_at, earned_at, id`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var u loyalty.LotUse
			if err := rows.Scan(&u.LotID, &u.Points); err != nil {
				t.Fatal(err)
			}
			wantUses = append(wantUses, u)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		e.spans.Reset()
		rep, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2027, 1, 1), ChunkSize: 40})
		if err != nil {
			t.Fatal(err)
		}
		// Every candidate (the 117 with expired lots left: those who owe
		// points have none) went through a chunk; a member retried alone,
		// after its chunk failed, has no chunk size on its span.
		sizes := map[int64]int{}
		for _, s := range spansByName(t, e.spans.Ended())["loyalty.expire_member_points"] {
			size, ok := attrMap(s.Attributes())["loyalty.expiry_chunk_size"].(int64)
			if !ok {
				t.Errorf("member span without a chunk size: %v", s.Attributes())
			}
			sizes[size]++
		}
		if diff := cmp.Diff(map[int64]int{40: 80, 37: 37}, sizes); diff != "" {
			t.Errorf("members by chunk size (-want +got):\n%s", diff)
		}
		// The breakdown is what json.Marshal writes for the lots taken.
		wantBreakdown, err := json.Marshal(loyalty.Breakdown{Policy: program.ExpiryLot, Lots: wantUses})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := d.Read().QueryRowContext(ctx, `SELECT breakdown FROM loyalty_transactions WHERE member_id = 'c001' AND type = 'expire'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != string(wantBreakdown) {
			t.Errorf("breakdown %s, want %s", got, wantBreakdown)
		}
		if rep.TotalPointsExpired != total || rep.Failed != 0 {
			t.Fatalf("report %+v, want %d points expired and no failures", rep, total)
		}
		for id, pts := range want {
			m := e.get(t, id)
			wantBalance := int64(0)
			if id[len(id)-1] == '7' {
				wantBalance = -500
			}
			if m.Balance != wantBalance {
				t.Errorf("%s: balance %d after expiring %d, want %d", id, m.Balance, pts, wantBalance)
			}
		}
		if got := e.count(t, `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings WHERE account = 'sink:expiry'`); got != total {
			t.Errorf("sink:expiry holds %d, want %d", got, total)
		}
		e.verify(t)
		rep, err = e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2027, 1, 1), ChunkSize: 40})
		if err != nil || rep.TotalPointsExpired != 0 || rep.AccountsAffected != 0 {
			t.Fatalf("second run: %+v %v", rep, err)
		}
	})
}
