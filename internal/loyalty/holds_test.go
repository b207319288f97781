package loyalty_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	moneypkg "github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestHoldCaptureVoid(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 50_000)) // 5,000 points, one lot
		e.clock.Set(startTime.Add(24 * time.Hour))
		e.earn(t, "m", hotel("h2", 30_000)) // 3,000 points, a later lot

		h1, err := e.svc.HoldPoints(ctx, "m", 6000, "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if again, err := e.svc.HoldPoints(ctx, "m", 6000, "order-1"); err != nil || again != h1 {
			t.Errorf("repeat hold: %s %v, want %s", again, err, h1)
		}
		if _, err := e.svc.HoldPoints(ctx, "m", 10, "order-1"); errs.CodeOf(err) != "hold_reference_conflict" {
			t.Errorf("reused reference: %v", err)
		}
		if m := e.get(t, "m"); m.Balance != 2000 || m.Pending != 6000 {
			t.Errorf("after hold: balance %d pending %d", m.Balance, m.Pending)
		}
		_, err = e.svc.HoldPoints(ctx, "m", 2500, "order-2")
		if ee, ok := errs.As(err); !ok || ee.Code != "insufficient_points" || ee.Kind != errs.Unprocessable ||
			ee.Details["points_short"] != int64(500) || ee.Details["current_balance"] != int64(2000) {
			t.Errorf("insufficient: %#v", err)
		}
		e.verify(t)

		if err := e.svc.CapturePointsHold(ctx, h1); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.CapturePointsHold(ctx, h1); err != nil {
			t.Errorf("second capture: %v", err)
		}
		if err := e.svc.VoidPointsHold(ctx, h1); errs.CodeOf(err) != "hold_captured" || errs.KindOf(err) != errs.Conflict {
			t.Errorf("void captured: %v", err)
		}
		if m := e.get(t, "m"); m.Balance != 2000 || m.Pending != 0 {
			t.Errorf("after capture: balance %d pending %d", m.Balance, m.Pending)
		}
		// Soonest-expiring lot first: the 5,000 lot is used up, 1,000 of the 3,000 lot.
		var remaining []int64
		rows, err := d.Read().QueryContext(ctx, `SELECT remaining FROM loyalty_lots WHERE member_id = 'm' ORDER BY expires_at`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var r int64
			if err := rows.Scan(&r); err != nil {
				t.Fatal(err)
			}
			remaining = append(remaining, r)
		}
		rows.Close()
		if fmt.Sprint(remaining) != "[0 2000]" {
			t.Errorf("lots remaining %v, want [0 2000]", remaining)
		}

		h2, err := e.svc.HoldPoints(ctx, "m", 1500, "order-3")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.VoidPointsHold(ctx, h2); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.VoidPointsHold(ctx, h2); err != nil {
			t.Errorf("second void: %v", err)
		}
		if err := e.svc.CapturePointsHold(ctx, h2); errs.CodeOf(err) != "hold_voided" || errs.KindOf(err) != errs.Conflict {
			t.Errorf("capture voided: %v", err)
		}
		if err := e.svc.CapturePointsHold(ctx, "nope"); errs.KindOf(err) != errs.NotFound {
			t.Errorf("capture unknown: %v", err)
		}
		if _, err := e.svc.HoldPoints(ctx, "ghost", 1, "x"); errs.KindOf(err) != errs.NotFound {
			t.Errorf("hold for unknown member: %v", err)
		}
		if _, err := e.svc.HoldPoints(ctx, "m", 0, "x"); errs.CodeOf(err) != "invalid_points" {
			t.Errorf("zero points: %v", err)
		}
		if m := e.get(t, "m"); m.Balance != 2000 || m.Pending != 0 {
			t.Errorf("after void: balance %d pending %d", m.Balance, m.Pending)
		}

		// Refund the captured points, once.
		for range 2 {
			if err := e.svc.RefundPoints(ctx, "m", 6000, "refund-order-1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.svc.RefundPoints(ctx, "m", 5, "refund-order-1"); errs.CodeOf(err) != "refund_reference_conflict" {
			t.Errorf("reused refund reference: %v", err)
		}
		if m := e.get(t, "m"); m.Balance != 8000 {
			t.Errorf("after refund: balance %d, want 8000", m.Balance)
		}
		st, err := e.svc.Statement(ctx, "m", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, en := range st.Entries {
			types = append(types, fmt.Sprintf("%s%+d", en.Type, en.Points))
		}
		if fmt.Sprint(types) != "[refund+6000 redeem-6000 earn+3000 earn+5000]" {
			t.Errorf("statement %v", types)
		}
		e.verify(t)
	})
}

// TestConcurrentHolds: holds racing for one member never hold more than
// the balance, and each reference holds once.
func TestConcurrentHolds(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 100_000)) // 10,000 points
		var (
			wg    sync.WaitGroup
			held  atomic.Int64
			short atomic.Int64
			ids   sync.Map
		)
		for g := range 16 {
			wg.Go(func() {
				for k := range 4 {
					ref := fmt.Sprintf("ref-%d", (g*4+k)%24) // repeats across goroutines
					id, err := e.svc.HoldPoints(ctx, "m", 700, ref)
					switch {
					case err == nil:
						if prev, loaded := ids.LoadOrStore(ref, id); !loaded {
							held.Add(700)
						} else if prev != id {
							t.Errorf("%s: two holds %s and %s", ref, prev, id)
						}
					case errs.CodeOf(err) == "insufficient_points":
						short.Add(1)
					default:
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		m := e.get(t, "m")
		if m.Pending > 10000 || m.Pending != held.Load() || m.Balance+m.Pending != 10000 {
			t.Errorf("pending %d, balance %d, held by callers %d", m.Pending, m.Balance, held.Load())
		}
		if short.Load() == 0 {
			t.Error("no hold was refused; the test does not exercise the limit")
		}
		// Capture and void concurrently, twice each; exactly one outcome per hold.
		var captured, voided atomic.Int64
		ids.Range(func(_, v any) bool {
			id := v.(string)
			for range 2 {
				wg.Go(func() {
					if err := e.svc.CapturePointsHold(ctx, id); err == nil {
						captured.Add(1)
					} else if errs.CodeOf(err) != "hold_voided" {
						t.Error(err)
					}
				})
				wg.Go(func() {
					if err := e.svc.VoidPointsHold(ctx, id); err == nil {
						voided.Add(1)
					} else if errs.CodeOf(err) != "hold_captured" {
						t.Error(err)
					}
				})
			}
			return true
		})
		wg.Wait()
		var nCaptured, nVoided int64
		ids.Range(func(_, v any) bool {
			h, err := e.svc.GetHold(ctx, v.(string))
			if err != nil {
				t.Fatal(err)
			}
			switch h.Status {
			case loyalty.HoldCaptured:
				nCaptured++
			case loyalty.HoldVoided:
				nVoided++
			default:
				t.Errorf("hold %s still %s", h.ID, h.Status)
			}
			return true
		})
		m = e.get(t, "m")
		if m.Pending != 0 || m.Balance != 10000-700*nCaptured {
			t.Errorf("after settling: %+v; %d captured, %d voided", m, nCaptured, nVoided)
		}
		e.verify(t)
	})
}

func TestEarnPurchase(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		first, err := e.svc.EarnPurchase(ctx, "m", "o-1", usd(12_345))
		if err != nil {
			t.Fatal(err)
		}
		if first.TotalPointsEarned != 123 || first.ExternalID != "order:o-1" || first.ActivityType != "purchase" {
			t.Errorf("first %+v", first)
		}
		// Purchase points pend for the return window (30 days by default).
		if first.PendingPoints != 123 || first.NewBalance != 0 || first.VestsAt == nil || !first.VestsAt.Equal(startTime.AddDate(0, 0, 30)) {
			t.Errorf("first pends %d until %v, balance %d; want 123 until %v, balance 0", first.PendingPoints, first.VestsAt, first.NewBalance, startTime.AddDate(0, 0, 30))
		}
		e.clock.Set(startTime.Add(time.Hour))
		again, err := e.svc.EarnPurchase(ctx, "m", "o-1", usd(12_345))
		if err != nil || again.TransactionID != first.TransactionID || !again.Replayed {
			t.Errorf("repeat: %+v %v", again, err)
		}
		if _, err := e.svc.EarnPurchase(ctx, "m", "o-2", moneyEUR(100)); errs.CodeOf(err) != "currency_not_accepted" {
			t.Errorf("EUR purchase: %v", err)
		}
		if m := e.get(t, "m"); m.Balance != 0 {
			t.Errorf("balance %d while pending", m.Balance)
		}
		e.clock.Set(startTime.AddDate(0, 0, 30))
		if _, err := e.svc.VestBatch(ctx, loyalty.VestOptions{}); err != nil {
			t.Fatal(err)
		}
		if m := e.get(t, "m"); m.Balance != 123 {
			t.Errorf("balance %d after vesting", m.Balance)
		}
		e.verify(t)
	})
}

func moneyEUR(cents int64) moneypkg.Money { return amt("EUR", cents) }
