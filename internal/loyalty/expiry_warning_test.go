package loyalty_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// expiringEvents returns the points.expiring events, each checked against
// its schema, with their data.
func expiringEvents(t *testing.T, d *db.DB) ([]events.Event, []events.PointsExpiringData) {
	t.Helper()
	evs := eventstest.OfType(eventstest.All(t, d), events.PointsExpiring)
	data := make([]events.PointsExpiringData, len(evs))
	for i, ev := range evs {
		data[i] = eventstest.Data[events.PointsExpiringData](t, ev)
		if ev.Subject != data[i].MemberID {
			t.Errorf("event %s: subject %q, data names member %q", ev.ID, ev.Subject, data[i].MemberID)
		}
	}
	return evs, data
}

func warn(t *testing.T, e *env, now time.Time, wantLots int) {
	t.Helper()
	rep, err := e.svc.WarnExpiring(context.Background(), now)
	if err != nil || rep.LotsWarned != wantLots {
		t.Fatalf("WarnExpiring(%s) = %+v, %v; want %d lots warned", now.Format(time.RFC3339), rep, err, wantLots)
	}
}

// TestExpiryWarningLotPolicy, with the injected clock: a lot is warned about
// once, warning_days before it expires, and never when it has already
// expired (whether or not the expiry job has taken its points yet) or has
// been spent.
func TestExpiryWarningLotPolicy(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := lotProgram(1)
		prog.Expiry.WarningDays = 30
		e := newEnvWith(t, d, prog)
		for _, id := range []string{"m", "spent"} {
			e.member(t, id)
		}
		e.earn(t, "m", hotel("h1", 50_000)) // 5,000 on Mar 10: expires Jul 1
		e.clock.Set(date(2026, 6, 1))
		e.earn(t, "m", hotel("h2", 30_000))                                            // 3,000 on Jun 1: expires Oct 1
		e.earn(t, "spent", hotel("h3", 15_000))                                        // 1,500 on Jun 1: expires Oct 1…
		if _, err := e.svc.Redeem(ctx, "spent", "merch-luggage-tag", ""); err != nil { // …and all spent
			t.Fatal(err)
		}

		// The first warning run comes after Jul 1: m's first lot has
		// expired, the expiry job not having run yet, and is not warned
		// about; nothing else is within 30 days.
		warn(t, e, date(2026, 7, 2), 0)
		if rep, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 7, 2)}); err != nil || rep.TotalPointsExpired != 5000 {
			t.Fatalf("expiry: %+v %v", rep, err)
		}
		// A moment more than 30 days before Oct 1: nothing yet.
		warn(t, e, date(2026, 9, 1).Add(-time.Microsecond), 0)
		// 30 days before: m's second lot, and not the spent one.
		warn(t, e, date(2026, 9, 1), 1)
		// Never again for that lot.
		warn(t, e, date(2026, 9, 1), 0)
		warn(t, e, date(2026, 9, 15), 0)

		evs, data := expiringEvents(t, d)
		if len(evs) != 1 {
			t.Fatalf("%d points.expiring events, want 1: %+v", len(evs), data)
		}
		want := events.PointsExpiringData{MemberID: "m", LotID: data[0].LotID, Points: 3000, ExpiresAt: date(2026, 10, 1)}
		if data[0] != want || data[0].LotID == "" {
			t.Errorf("event data %+v, want %+v", data[0], want)
		}
		if got := e.count(t, `SELECT COUNT(*) FROM loyalty_lots WHERE id = $1 AND member_id = 'm' AND remaining = 3000`, data[0].LotID); got != 1 {
			t.Errorf("the event names lot %q, not m's 3,000-point lot", data[0].LotID)
		}
		if !evs[0].Time.Equal(date(2026, 9, 1)) {
			t.Errorf("event time %s, want the run's instant", evs[0].Time)
		}
		// One span per chunk; the event continues its trace.
		var batches int
		for _, s := range e.spans.Ended() {
			if s.Name() != "loyalty.expiry_warning_batch" {
				continue
			}
			batches++
			attrs := attribute.NewSet(s.Attributes()...)
			if v, _ := attrs.Value("loyalty.lots_warned"); v.AsInt64() == 1 {
				if tp := evs[0].TraceParent; tp != fmt.Sprintf("00-%s-%s-01", s.SpanContext().TraceID(), s.SpanContext().SpanID()) {
					t.Errorf("event traceparent %q is not the warning batch's span %s", tp, s.SpanContext().SpanID())
				}
			}
		}
		// Candidates are members with a due lot not yet warned about, so
		// only the run that warned had a chunk to do.
		if batches != 1 {
			t.Errorf("%d loyalty.expiry_warning_batch spans, want 1", batches)
		}
		e.clock.Set(date(2026, 9, 15))
		e.verify(t)
	})
}

// TestExpiryWarningInactivityPolicy: under the inactivity policy every lot
// of a member about to lapse is warned about with the member's expiry, once;
// activity that moves the expiry later warns again only for the new instant.
func TestExpiryWarningInactivityPolicy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := program.Default() // inactivity, 24 months
		prog.Expiry.WarningDays = 30
		e := newEnvWith(t, d, prog)
		for _, id := range []string{"idle", "active", "empty"} {
			e.member(t, id)
		}
		e.earn(t, "idle", hotel("h1", 40_000))
		e.earn(t, "idle", hotel("h2", 20_000))
		e.clock.Set(program.AddMonths(startTime, 6))
		e.earn(t, "active", hotel("h3", 10_000))

		expiry := program.AddMonths(startTime, 24)
		warn(t, e, expiry.Add(-30*24*time.Hour-time.Microsecond), 0)
		warn(t, e, expiry.Add(-30*24*time.Hour), 2) // idle's two lots; not active (later), not empty (no points)
		warn(t, e, expiry.Add(-29*24*time.Hour), 0)
		_, data := expiringEvents(t, d)
		if len(data) != 2 {
			t.Fatalf("%d points.expiring events, want 2", len(data))
		}
		var points []int64
		for _, w := range data {
			if w.MemberID != "idle" || !w.ExpiresAt.Equal(expiry) {
				t.Errorf("warning %+v, want idle's lots expiring at %s", w, expiry)
			}
			points = append(points, w.Points)
		}
		if fmt.Sprint(points) != "[4000 2000]" && fmt.Sprint(points) != "[2000 4000]" {
			t.Errorf("warned points %v, want 4000 and 2000", points)
		}

		// idle earns 10 days before expiry: 24 more months, no new warning
		// until 30 days before the new instant, then all three lots again.
		e.clock.Set(expiry.Add(-10 * 24 * time.Hour))
		e.earn(t, "idle", hotel("h4", 10_000))
		later := program.AddMonths(expiry.Add(-10*24*time.Hour), 24)
		warn(t, e, expiry.Add(-9*24*time.Hour), 0)
		warn(t, e, later.Add(-30*24*time.Hour), 3)
		warn(t, e, later.Add(-20*24*time.Hour), 0)
		if _, data := expiringEvents(t, d); len(data) != 5 {
			t.Errorf("%d points.expiring events, want 5", len(data))
		}
	})
}

// TestExpiryWarningOffAndConcurrent: warning_days 0 warns nobody; two
// runners at once (two replicas) warn about each lot exactly once.
func TestExpiryWarningOffAndConcurrent(t *testing.T) {
	const members = 30
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := lotProgram(1)
		e := newEnvWith(t, d, prog)
		for i := range members {
			id := fmt.Sprintf("m%02d", i)
			e.member(t, id)
			e.earn(t, id, hotel("h-"+id, 10_000)) // each a lot expiring Jul 1
		}
		warn(t, e, date(2026, 6, 15), 0) // off
		prog.Expiry.WarningDays = 30
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for range 3 {
			wg.Go(func() {
				rep, err := e.svc.WarnExpiring(context.Background(), date(2026, 6, 15))
				if err != nil {
					t.Errorf("concurrent run: %v", err)
				}
				mu.Lock()
				total += rep.LotsWarned
				mu.Unlock()
			})
		}
		wg.Wait()
		_, data := expiringEvents(t, d)
		lots := map[string]int{}
		for _, w := range data {
			lots[w.LotID]++
		}
		if total != members || len(data) != members || len(lots) != members {
			t.Errorf("3 concurrent runs warned %d (reported), %d events for %d lots; want %d each", total, len(data), len(lots), members)
		}
	})
}
