package loyalty_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestSixtyFourRedemptionsOneMember: 64 concurrent redemptions by one member
// whose balance covers 17 of them spend exactly 17 prices, refuse the rest
// with insufficient_points, leave nothing pending, and the books verify —
// whatever batches the write pipeline forms.
func TestSixtyFourRedemptionsOneMember(t *testing.T) {
	const (
		price      = 1500 // merch-luggage-tag, no tier discount at blue
		affordable = 17
		extra      = 700 // less than one more redemption
	)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.fund(t, "m", affordable*price+extra)
		var (
			wg               sync.WaitGroup
			mu               sync.Mutex
			spent, succeeded int64
			refused          int
		)
		start := make(chan struct{})
		for i := range 64 {
			wg.Go(func() {
				<-start
				res, err := e.svc.Redeem(context.Background(), "m", "merch-luggage-tag", fmt.Sprint("r-", i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					succeeded++
					spent += res.PointsDeducted
				case errs.CodeOf(err) == "insufficient_points":
					refused++
				default:
					t.Errorf("redemption %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		m := e.get(t, "m")
		if succeeded != affordable || refused != 64-affordable || spent != affordable*price || m.Balance != extra || m.Pending != 0 {
			t.Errorf("%d redeemed for %d points, %d refused; member %+v; want %d, %d, %d refused, balance %d",
				succeeded, spent, refused, m, affordable, affordable*price, 64-affordable, extra)
		}
		e.verify(t)
	})
}

// TestSameMemberHoldsInOneBatch: holds for one member queued behind a busy
// writer share one batch and apply in arrival order against the running
// balance: the one that would take it below zero fails alone, and the ones
// after it still see what is left.
func TestSameMemberHoldsInOneBatch(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, Batching: db.Batching{Writers: 1}}, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.fund(t, "m", 1000)
		rec.Reset()

		release := dbtest.HoldWriter(t, d)
		amounts := []int64{400, 400, 400, 150, 60, 50}
		wantCodes := []string{"", "", "insufficient_points", "", "insufficient_points", ""}
		got := make([]error, len(amounts))
		var wg sync.WaitGroup
		for i, pts := range amounts {
			dbtest.Enqueue(t, d, &wg, func() {
				_, got[i] = e.svc.HoldPoints(context.Background(), "m", pts, fmt.Sprint("hold-", i))
			})
		}
		release()
		wg.Wait()
		for i := range amounts {
			code := ""
			if got[i] != nil {
				code = errs.CodeOf(got[i])
			}
			if code != wantCodes[i] {
				t.Errorf("hold %d of %d points: %v, want %q", i, amounts[i], got[i], wantCodes[i])
			}
		}
		m := e.get(t, "m")
		if m.Balance != 0 || m.Pending != 1000 {
			t.Errorf("member %+v, want balance 0 with 1000 pending", m)
		}
		sizes := []int64{}
		for _, s := range rec.Ended() {
			if s.Name() != "ledger.write_batch" {
				continue
			}
			for _, kv := range s.Attributes() {
				if kv.Key == "ledger.batch.size" {
					sizes = append(sizes, kv.Value.AsInt64())
				}
			}
		}
		if fmt.Sprint(sizes) != fmt.Sprint([]int64{1, int64(len(amounts))}) {
			t.Errorf("batch sizes %v, want the blocker alone then all %d holds in one", sizes, len(amounts))
		}
		e.verify(t)
	})
}
