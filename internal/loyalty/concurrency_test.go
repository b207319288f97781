package loyalty_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestConcurrentEarning posts activities for a few members from many
// goroutines at once, with repeated external ids and capped promotions, and
// then checks the books.
func TestConcurrentEarning(t *testing.T) {
	const (
		members    = 4
		goroutines = 12
		perG       = 20
		distinct   = 80 // external ids; goroutines×perG = 240 posts, so most repeat
	)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.promo(t, program.Promotion{ID: "capped-times", Name: "First three flights", ActivityTypes: []string{"flight"}, FixedBonus: 100, CapTimes: 3})
		e.promo(t, program.Promotion{ID: "capped-points", Name: "Double hotels to 1,500", ActivityTypes: []string{"hotel"}, MultiplierBP: 20000, CapPoints: 1500})
		for i := range members {
			e.member(t, fmt.Sprintf("m%d", i))
		}
		activityFor := func(i int) (string, loyalty.Activity) {
			ext := fmt.Sprintf("ext-%d", i)
			if i%2 == 0 {
				return fmt.Sprintf("m%d", i%members), flight(ext, int64(600+i), "Y")
			}
			return fmt.Sprintf("m%d", i%members), hotel(ext, int64(10000+i*100))
		}

		var (
			mu      sync.Mutex
			results = map[string]loyalty.EarnResult{}
			wg      sync.WaitGroup
			errc    = make(chan error, goroutines*perG)
		)
		for g := range goroutines {
			wg.Go(func() {
				for k := range perG {
					i := (g*7 + k*13) % distinct
					memberID, a := activityFor(i)
					res, err := e.svc.Earn(context.Background(), memberID, a)
					if err != nil {
						errc <- fmt.Errorf("%s: %w", a.ExternalID, err)
						continue
					}
					mu.Lock()
					if prev, ok := results[a.ExternalID]; ok && prev.TransactionID != res.TransactionID {
						errc <- fmt.Errorf("%s credited twice: %s and %s", a.ExternalID, prev.TransactionID, res.TransactionID)
					}
					results[a.ExternalID] = res
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		e.verify(t)

		want := map[string]int64{}
		for _, r := range results {
			want[r.MemberID] += r.TotalPointsEarned
		}
		for id, total := range want {
			if m := e.get(t, id); m.Balance != total {
				t.Errorf("%s: balance %d, want %d (sum of distinct results)", id, m.Balance, total)
			}
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`); n != int64(len(results)) {
			t.Errorf("%d transactions for %d distinct external ids", n, len(results))
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_promotion_awards WHERE promotion_id = 'capped-times' AND times > 3`); n != 0 {
			t.Errorf("%d members over the times cap", n)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_promotion_awards WHERE promotion_id = 'capped-points' AND points > 1500`); n != 0 {
			t.Errorf("%d members over the points cap", n)
		}
		// Every member flew and stayed more than the caps allow.
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_promotion_awards WHERE (promotion_id = 'capped-times' AND times = 3) OR (promotion_id = 'capped-points' AND points = 1500)`); n == 0 {
			t.Error("no cap was reached; the test does not exercise caps")
		}
	})
}

// TestConcurrentRedeemHotMember redeems for one member from many goroutines
// while others earn for it (new lots, and tier upgrades that change the
// price), with repeated references, and then checks the books: every
// redemption took its price once, lots were consumed without overdraw and
// the ledger verifies.
func TestConcurrentRedeemHotMember(t *testing.T) {
	const (
		redeemers = 10
		earners   = 3
		perG      = 12
	)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.earn(t, "m", hotel("seed", 200_000)) // 20,000 points in one lot
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			redeemed = map[string]int64{} // redemption id → points
			byRef    = map[string]string{}
			earned   atomic.Int64
		)
		earned.Store(e.get(t, "m").Balance)
		for g := range redeemers {
			wg.Go(func() {
				for k := range perG {
					ref := ""
					if k%2 == 0 {
						ref = fmt.Sprintf("ref-%d", (g*perG+k)%30) // repeats across goroutines
					}
					res, err := e.svc.Redeem(context.Background(), "m", "merch-luggage-tag", ref)
					switch code := errs.CodeOf(err); {
					case err == nil:
						mu.Lock()
						if prev, ok := byRef[ref]; ref != "" && ok && prev != res.RedemptionID {
							t.Errorf("reference %s redeemed twice: %s and %s", ref, prev, res.RedemptionID)
						}
						if ref != "" {
							byRef[ref] = res.RedemptionID
						}
						redeemed[res.RedemptionID] = res.PointsDeducted
						mu.Unlock()
					case code == "insufficient_points" || code == "redemption_in_progress":
					default:
						t.Errorf("redeem %q: %v", ref, err)
					}
				}
			})
		}
		for g := range earners {
			wg.Go(func() {
				for k := range perG {
					res, err := e.svc.Earn(context.Background(), "m", hotel(fmt.Sprintf("h-%d-%d", g, k), 30_000+int64(k)*100))
					if err != nil {
						t.Errorf("earn: %v", err)
						continue
					}
					earned.Add(res.TotalPointsEarned)
				}
			})
		}
		wg.Wait()
		var spent int64
		for _, p := range redeemed {
			spent += p
		}
		m := e.get(t, "m")
		if m.Pending != 0 || m.Balance != earned.Load()-spent {
			t.Errorf("member %+v; earned %d, redeemed %d in %d redemptions", m, earned.Load(), spent, len(redeemed))
		}
		if len(redeemed) == 0 {
			t.Error("nothing was redeemed")
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_redemptions WHERE status = 'success'`); n != int64(len(redeemed)) {
			t.Errorf("%d successful redemptions stored, %d returned", n, len(redeemed))
		}
		e.verify(t)
	})
}
