package loyalty_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

var errAbort = errors.New("abort after the earning")

// TestEventsRolledBackWithTheirChange: an earning (and an enrolment) whose
// transaction rolls back after it wrote leaves no event, while one that
// commits leaves exactly its own.
func TestEventsRolledBackWithTheirChange(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		ctx := context.Background()
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if _, err := e.svc.Earn(db.Join(ctx, tx), "m", hotel("rolled-back", 20_000)); err != nil {
				return err
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("joined earning: %v, want the abort", err)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM events WHERE type = $1`, events.PointsEarned); n != 0 {
			t.Errorf("%d points.earned events after the earning rolled back, want 0", n)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`); n != 0 {
			t.Fatalf("%d transactions after the rollback: the test did not roll the earning back", n)
		}
		res := e.earn(t, "m", hotel("kept", 20_000))
		evs := eventstest.OfType(eventstest.All(t, d), events.PointsEarned)
		if len(evs) != 1 {
			t.Fatalf("%d points.earned events after one committed earning, want 1", len(evs))
		}
		got := eventstest.Data[events.PointsEarnedData](t, evs[0])
		if got.TransactionID != res.TransactionID || got.Points != res.TotalPointsEarned || got.Balance != res.NewBalance || evs[0].Subject != "m" {
			t.Errorf("event %+v (subject %s) does not describe the earning %+v", got, evs[0].Subject, res)
		}
		// A replay of the same activity credits nothing and says nothing.
		e.earn(t, "m", hotel("kept", 20_000))
		if n := e.count(t, `SELECT COUNT(*) FROM events WHERE type = $1`, events.PointsEarned); n != 1 {
			t.Errorf("%d points.earned events after a replay, want 1", n)
		}
	})
}

// TestEventsInBatchedEarnings: earnings that the write pipeline applies in
// one batch, every other one rolled back by its caller after it earned, leave
// exactly one event per committed earning, naming its transaction.
func TestEventsInBatchedEarnings(t *testing.T) {
	dbtest.EachWith(t, dbtest.Options{Batching: db.Batching{Writers: 1}}, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		const n = 24
		for i := range 4 {
			e.member(t, fmt.Sprint("m", i))
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			kept = map[string]bool{} // transaction ids committed
		)
		release := dbtest.HoldWriter(t, d)
		for i := range n {
			dbtest.Enqueue(t, d, &wg, func() {
				var txID string
				err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
					res, err := e.svc.Earn(db.Join(ctx, tx), fmt.Sprint("m", i%4), hotel(fmt.Sprint("stay-", i), 10_000+int64(i)*100))
					if err != nil {
						return err
					}
					txID = res.TransactionID
					if i%2 == 1 {
						return errAbort
					}
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					kept[txID] = true
				case i%2 == 1 && errors.Is(err, errAbort):
				default:
					t.Errorf("earning %d: %v", i, err)
				}
			})
		}
		release()
		wg.Wait()
		evs := eventstest.OfType(eventstest.All(t, d), events.PointsEarned)
		if len(evs) != len(kept) || len(kept) != n/2 {
			t.Fatalf("%d points.earned events for %d committed earnings, want %d each", len(evs), len(kept), n/2)
		}
		for _, ev := range evs {
			if tx := eventstest.Data[events.PointsEarnedData](t, ev).TransactionID; !kept[tx] {
				t.Errorf("event %s names transaction %s, which did not commit", ev.ID, tx)
			}
		}
		e.verify(t)
	})
}
