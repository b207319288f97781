package loyalty_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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
		n, names := commits()
		if n != 1 {
			t.Fatalf("%d commits for one earn request, want 1; database spans: %v", n, names)
		}
		t.Logf("%s: %d database calls: %v", d.Engine(), len(names), names)
		// PostgreSQL: begin, claim the key, lock the member (+ external id),
		// promotions, the one write statement, store the answer, commit.
		if d.Engine() == db.Postgres && len(names) > 7 {
			t.Errorf("%d database calls for one earn request, want at most 7: %v", len(names), names)
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

// TestConcurrentDuplicateActivitiesOverHTTP: the same activity posted at once
// under different Idempotency-Keys credits once. On PostgreSQL the losers hit
// the external id's unique index inside their joined transaction, which is
// then rolled back and run again, finding the winner's credit to replay.
func TestConcurrentDuplicateActivitiesOverHTTP(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		body := activity("flight", "dup-flight", map[string]any{"distance_miles": 1000, "fare_class": "Y", "cabin": "economy"})
		const n = 16
		var wg sync.WaitGroup
		results := make([]resp, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.doKey(t, "POST", "/v1/members/m/activities", e.service(t), fmt.Sprintf("dup-%d", i), body)
			}()
		}
		wg.Wait()
		txIDs := map[string]bool{}
		created := 0
		for i, r := range results {
			if r.status != 201 && r.status != 200 {
				t.Fatalf("request %d: %d %s", i, r.status, r.raw)
			}
			if r.status == 201 {
				created++
			}
			var res struct {
				TransactionID string `json:"transaction_id"`
			}
			r.json(t, &res)
			txIDs[res.TransactionID] = true
		}
		if created != 1 || len(txIDs) != 1 {
			t.Fatalf("%d credited (201) and %d distinct transactions, want 1 and 1", created, len(txIDs))
		}
		if got := e.get(t, "m").Balance; got != 1000 {
			t.Fatalf("balance %d, want 1000 (one credit)", got)
		}
		e.verify(t)
	})
}
