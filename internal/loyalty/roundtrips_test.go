package loyalty_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestEarnRoundTrips counts the database calls of one earning (with one
// promotion applied) from the otelsql spans, so a change that adds round
// trips to the hot path is noticed. docs/benchmarks.md quotes it.
func TestEarnRoundTrips(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp}, func(t *testing.T, d *db.DB) {
		svc, err := loyalty.New(loyalty.Config{DB: d, Program: program.Default(), TracerProvider: tp, Now: (&clock{t: startTime}).Now})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := svc.CreateMember(ctx, loyalty.NewMember{ID: "m", Name: "M", Email: "m@example.com"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreatePromotion(ctx, program.Promotion{Name: "Double", ActivityTypes: []string{"flight"}, MultiplierBP: 20000,
			Start: startTime.Add(-1), End: startTime.Add(1e12)}); err != nil {
			t.Fatal(err)
		}
		rec.Reset()
		if _, err := svc.Earn(ctx, "m", flight("f1", 1000, "Y")); err != nil {
			t.Fatal(err)
		}
		var calls []string
		for _, s := range rec.Ended() {
			if !strings.HasPrefix(s.Name(), "loyalty.") {
				calls = append(calls, s.Name())
			}
		}
		t.Logf("%s: %d database calls: %v", d.Engine(), len(calls), calls)
		limit := 5 // begin, lock member + look up external id, promotions, one write statement, commit
		if d.Engine() == db.SQLite {
			limit = 10 // in-process: the writes are separate statements
		}
		if len(calls) > limit {
			t.Errorf("%d database calls for one earning, want at most %d: %v", len(calls), limit, calls)
		}
	})
}

// TestEarnOverHTTPCommitsOnce: an activity posted with an Idempotency-Key is
// claimed, credited and answered in one transaction (the route is Atomic), so
// the request costs one commit, not three; its replay commits nothing new.
func TestEarnOverHTTPCommitsOnce(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp}, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		commits := func() (n int, names []string) {
			for _, s := range rec.Ended() {
				names = append(names, s.Name())
				if strings.Contains(strings.ToLower(s.Name()), "commit") {
					n++
				}
			}
			return n, names
		}
		body := activity("flight", "f-http", map[string]any{"distance_miles": 1000, "fare_class": "Y", "cabin": "economy"})
		rec.Reset()
		if r := e.doKey(t, "POST", "/v1/members/m/activities", e.service(t), "earn-1", body); r.status != 201 {
			t.Fatalf("earn: %d %s", r.status, r.raw)
		}
		if n, names := commits(); n != 1 {
			t.Fatalf("%d commits for one earn request, want 1; database spans: %v", n, names)
		}
		rec.Reset()
		if r := e.doKey(t, "POST", "/v1/members/m/activities", e.service(t), "earn-1", body); r.status != 201 || r.header.Get("Idempotency-Replayed") != "true" {
			t.Fatalf("replay: %d %s", r.status, r.raw)
		}
		if got := e.get(t, "m").Balance; got != 1000 {
			t.Fatalf("balance %d after an earn and its replay, want 1000", got)
		}
	})
}
