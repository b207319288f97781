package loyalty_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// willDowngrade reads the member's will_downgrade through the API (nil when
// the record has none).
func (e *env) willDowngrade(t *testing.T, id string) *loyalty.WillDowngrade {
	t.Helper()
	r := e.do(t, http.MethodGet, "/v1/members/"+id, e.admin(t), nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET member %s: %d %s", id, r.status, r.raw)
	}
	var m loyalty.MemberJSON
	r.json(t, &m)
	return m.WillDowngrade
}

func wantWillDowngrade(t *testing.T, e *env, id, tier string, at time.Time) {
	t.Helper()
	got := e.willDowngrade(t, id)
	if tier == "" {
		if got != nil {
			t.Errorf("%s at %s: will_downgrade %+v, want none", id, e.clock.Now().Format(time.DateOnly), *got)
		}
		return
	}
	if got == nil || got.Tier != tier || !got.At.Equal(at) {
		t.Errorf("%s at %s: will_downgrade %+v, want %s at %s", id, e.clock.Now().Format(time.DateOnly), got, tier, at.Format(time.RFC3339))
	}
}

func (e *env) wantTier(t *testing.T, id, tier string) {
	t.Helper()
	if m := e.get(t, id); m.Tier != tier {
		t.Errorf("%s at %s: tier %s, want %s", id, e.clock.Now().Format(time.DateOnly), m.Tier, tier)
	}
}

// tierEvents returns the member's tier.changed events as "from>to:reason".
func tierEvents(t *testing.T, d *db.DB, id string) []string {
	t.Helper()
	var out []string
	for _, ev := range eventstest.OfType(eventstest.All(t, d), events.TierChanged) {
		if err := eventstest.Validate(ev); err != nil {
			t.Errorf("tier.changed does not match its schema: %v", err)
		}
		data := eventstest.Data[events.TierChangedData](t, ev)
		if data.MemberID == id {
			out = append(out, fmt.Sprintf("%s>%s:%s", data.FromTier, data.ToTier, data.Reason))
		}
	}
	return out
}

func (e *env) requalify(t *testing.T, at time.Time) loyalty.RequalifyReport {
	t.Helper()
	e.clock.Set(at)
	rep, err := e.svc.Requalify(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestSoftLanding crosses status-year boundaries with soft landing on and no
// grace: a Platinum member without status points drops one tier a year
// (Gold, then Silver), the drop is announced notice_days before the year
// ends and the notice goes when the member earns their tier back; a member
// whose points reach the tier below drops there for the ordinary reason.
func TestSoftLanding(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := program.Default()
		prog.Requalification = program.Requalification{SoftLanding: true, NoticeDays: 30}
		e := newEnvWith(t, d, prog)
		e.member(t, "plat")
		e.member(t, "gold")
		e.earn(t, "plat", hotel("p-2026", 1_000_000)) // 100,000 status points: platinum
		e.earn(t, "gold", hotel("g-2026", 500_000))   // 50,000: gold
		e.wantTier(t, "plat", "platinum")
		e.requalify(t, day(2027, 1, 1).Add(time.Hour)) // 2026's points keep both
		e.wantTier(t, "plat", "platinum")

		e.clock.Set(day(2027, 6, 1))
		e.earn(t, "gold", hotel("g-2027", 300_000)) // 30,000 in 2027: silver's
		e.clock.Set(day(2027, 12, 1))               // 31 days before the year ends
		wantWillDowngrade(t, e, "plat", "", time.Time{})
		e.clock.Set(day(2027, 12, 2)) // 30 days before
		wantWillDowngrade(t, e, "plat", "gold", day(2028, 1, 1))
		wantWillDowngrade(t, e, "gold", "silver", day(2028, 1, 1))

		rep := e.requalify(t, day(2028, 1, 1).Add(time.Hour))
		if rep.Downgraded != 2 || rep.Deferred != 0 {
			t.Errorf("2027: %+v, want 2 downgraded", rep)
		}
		e.wantTier(t, "plat", "gold") // not blue: one tier only
		e.wantTier(t, "gold", "silver")
		wantWillDowngrade(t, e, "plat", "", time.Time{})

		e.clock.Set(day(2028, 12, 5))
		wantWillDowngrade(t, e, "plat", "silver", day(2029, 1, 1))
		e.earn(t, "plat", hotel("p-2028", 500_000)) // 50,000 in 2028: gold again
		wantWillDowngrade(t, e, "plat", "", time.Time{})
		e.requalify(t, day(2029, 1, 1).Add(time.Hour))
		e.wantTier(t, "plat", "gold")
		e.requalify(t, day(2030, 1, 1).Add(time.Hour))
		e.wantTier(t, "plat", "silver")

		want := []string{"blue>platinum:qualified", "platinum>gold:soft_landing", "gold>silver:soft_landing"}
		if got := tierEvents(t, d, "plat"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("plat's tier events %v, want %v", got, want)
		}
		// A drop of one tier is an ordinary requalification, soft landing or not.
		want = []string{"blue>gold:qualified", "gold>silver:requalification", "silver>blue:requalification"}
		if got := tierEvents(t, d, "gold"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("gold's tier events %v, want %v", got, want)
		}
		e.verify(t)
	})
}

// TestTierGrace crosses the 2027/2028 boundary with soft landing and a
// 60-day grace: two Platinum members without 2027 status points keep their
// tier into 2028; the notice appears 30 days before the grace ends; one
// earns Platinum's threshold in 2028 (the notice goes) and keeps the tier
// when the grace ends, the other keeps it until the last instant and then
// drops one tier, with reason grace_expired. A third, with 2027's points,
// is neither deferred nor warned; re-runs change nothing.
func TestTierGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := program.Default()
		prog.Requalification = program.Requalification{SoftLanding: true, GraceDays: 60, NoticeDays: 30}
		e := newEnvWith(t, d, prog)
		ctx := context.Background()
		for _, id := range []string{"lapse", "back", "steady"} {
			e.member(t, id)
			e.earn(t, id, hotel(id+"-2026", 1_000_000)) // platinum
		}
		e.requalify(t, day(2027, 1, 1).Add(time.Hour))
		e.clock.Set(day(2027, 9, 1))
		e.earn(t, "steady", hotel("steady-2027", 1_000_000))
		// The drop at the year's end would wait for the grace: the date
		// shown is the grace's end, and it is not yet 30 days away.
		e.clock.Set(day(2027, 12, 20))
		wantWillDowngrade(t, e, "lapse", "", time.Time{})

		graceEnd := day(2028, 3, 1) // 2028-01-01 + 60 days (a leap year)
		rep := e.requalify(t, day(2028, 1, 1).Add(time.Hour))
		if rep.Deferred != 2 || rep.Downgraded != 0 || rep.Unchanged != 1 {
			t.Errorf("2027: %+v, want 2 deferred and 1 unchanged", rep)
		}
		for _, id := range []string{"lapse", "back", "steady"} {
			e.wantTier(t, id, "platinum")
		}
		e.clock.Set(graceEnd.AddDate(0, 0, -31))
		wantWillDowngrade(t, e, "lapse", "", time.Time{})
		e.clock.Set(graceEnd.AddDate(0, 0, -30))
		wantWillDowngrade(t, e, "lapse", "gold", graceEnd)
		wantWillDowngrade(t, e, "back", "gold", graceEnd)
		wantWillDowngrade(t, e, "steady", "", time.Time{})
		e.earn(t, "back", hotel("back-2028", 1_000_000)) // requalifies in the grace
		wantWillDowngrade(t, e, "back", "", time.Time{})

		// The last instant of the grace: nothing ends.
		e.clock.Set(graceEnd.Add(-time.Microsecond))
		if err := e.svc.RequalificationPass(ctx); err != nil {
			t.Fatal(err)
		}
		e.wantTier(t, "lapse", "platinum")

		e.clock.Set(graceEnd)
		g, err := e.svc.EndGracePeriods(ctx, e.clock.Now())
		if err != nil || g.Downgraded != 1 || g.Kept != 1 {
			t.Errorf("grace end: %+v %v, want 1 downgraded and 1 kept", g, err)
		}
		e.wantTier(t, "lapse", "gold")
		e.wantTier(t, "back", "platinum")
		wantWillDowngrade(t, e, "lapse", "", time.Time{})
		if g, err := e.svc.EndGracePeriods(ctx, e.clock.Now()); err != nil || g != (loyalty.GraceReport{}) {
			t.Errorf("second run: %+v %v", g, err)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_tier_grace`); n != 0 {
			t.Errorf("%d grace rows left after the graces ended", n)
		}

		want := []string{"blue>platinum:qualified", "platinum>gold:grace_expired"}
		if got := tierEvents(t, d, "lapse"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("lapse's tier events %v, want %v", got, want)
		}
		want = []string{"blue>platinum:qualified"}
		if got := tierEvents(t, d, "back"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("back's tier events %v, want %v", got, want)
		}
		e.verify(t)
	})
}
