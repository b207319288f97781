package loyalty_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, SQLiteStatementSpans: true}, func(t *testing.T, d *db.DB) {
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
			if !strings.HasPrefix(s.Name(), "loyalty.") && s.Name() != "ledger.write_batch" {
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
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, SQLiteStatementSpans: true}, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		commits := func() (n int, names []string) {
			for _, s := range rec.Ended() {
				if s.Name() == "ledger.write_batch" {
					continue // the pipeline's span, not a database call
				}
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

// TestRedeemRoundTrips counts the database calls of each of a redemption's
// two transactions (hold; capture) and of checkout's hold and capture, from
// the otelsql spans. On PostgreSQL what matters is the calls made while the
// member's row is locked, which every redemption of that member waits for:
// the lock is taken by the hold's write statement and by the capture's lock
// statement, and after it come at most one statement and the commit.
// docs/benchmarks.md quotes it.
func TestRedeemRoundTrips(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, SQLiteStatementSpans: true}, func(t *testing.T, d *db.DB) {
		svc, err := loyalty.New(loyalty.Config{DB: d, Program: program.Default(), TracerProvider: tp, Now: (&clock{t: startTime}).Now})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := svc.CreateMember(ctx, loyalty.NewMember{ID: "m", Name: "M", Email: "m@example.com"}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 { // three lots; the redemptions below take from two of them
			if _, err := svc.Adjust(ctx, "m", 1000, fmt.Sprintf("funding %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		// txs splits the recorded database calls into transactions; each
		// is its calls in order, begin and commit included.
		txs := func() [][]string {
			var out [][]string
			spans := rec.Ended()
			sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
			in := false
			for _, s := range spans {
				if strings.HasPrefix(s.Name(), "loyalty.") || s.Name() == "ledger.write_batch" {
					continue
				}
				call := s.Name()
				for _, kv := range s.Attributes() {
					if kv.Key == "db.query.text" {
						call += " " + strings.Join(strings.Fields(kv.Value.AsString()), " ")
					}
				}
				switch {
				case strings.Contains(s.Name(), "begin"):
					out, in = append(out, []string{call}), true
				case in:
					out[len(out)-1] = append(out[len(out)-1], call)
					if strings.Contains(s.Name(), "commit") || strings.Contains(s.Name(), "rollback") {
						in = false
					}
				}
			}
			return out
		}
		// locked counts the calls after the first that locks the member's
		// row (FOR UPDATE, or an UPDATE of loyalty_members), commit included.
		locked := func(tx []string) int {
			for i, c := range tx {
				if strings.Contains(c, "FOR UPDATE") || strings.Contains(c, "UPDATE loyalty_members") {
					return len(tx) - 1 - i
				}
			}
			return 0
		}
		check := func(what string, tx []string, total, underLock int) {
			t.Helper()
			if d.Engine() != db.Postgres {
				// In-process, one writer that holds the write lock from begin
				// to commit: the statements stay separate.
				t.Logf("%s: %s: %d database calls", d.Engine(), what, len(tx))
				return
			}
			t.Logf("%s: %s: %d database calls, %d after the member's lock", d.Engine(), what, len(tx), locked(tx))
			if len(tx) > total || locked(tx) > underLock {
				t.Errorf("%s: %d database calls (want at most %d), %d after the member's lock (want at most %d):\n%s",
					what, len(tx), total, locked(tx), underLock, strings.Join(tx, "\n"))
			}
		}

		rec.Reset()
		if _, err := svc.Redeem(ctx, "m", "merch-luggage-tag", "ref-1"); err != nil { // 1,500 points: two lots
			t.Fatal(err)
		}
		got := txs()
		if len(got) != 2 {
			t.Fatalf("%d transactions for one redemption, want 2 (hold, capture): %v", len(got), got)
		}
		// begin, read member and reference, one write statement (takes the lock), commit
		check("redemption hold", got[0], 4, 1)
		// begin, lock member, one capture statement, commit
		check("redemption capture", got[1], 4, 2)

		// The capture statement picks the lots soonest-expiring first (here
		// all expire together: in earning order) and writes the breakdown
		// exactly as encoding/json would.
		st, err := svc.Statement(ctx, "m", 1, "")
		if err != nil || len(st.Entries) != 1 || st.Entries[0].Type != loyalty.TxRedeem {
			t.Fatalf("statement: %+v, %v", st, err)
		}
		var bd loyalty.Breakdown
		if err := json.Unmarshal(st.Entries[0].Breakdown, &bd); err != nil {
			t.Fatal(err)
		}
		if len(bd.Lots) != 2 || bd.Lots[0].Points != 1000 || bd.Lots[1].Points != 500 || bd.Lots[0].LotID >= bd.Lots[1].LotID ||
			bd.OptionID != "merch-luggage-tag" || bd.HoldID == "" || bd.RedemptionID == "" {
			t.Errorf("redemption breakdown %s", st.Entries[0].Breakdown)
		}
		if again, _ := json.Marshal(bd); string(again) != string(st.Entries[0].Breakdown) {
			t.Errorf("breakdown stored as\n%s\nencoding/json writes\n%s", st.Entries[0].Breakdown, again)
		}

		rec.Reset()
		id, err := svc.HoldPoints(ctx, "m", 200, "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.CapturePointsHold(ctx, id); err != nil {
			t.Fatal(err)
		}
		got = txs()
		if len(got) != 2 {
			t.Fatalf("%d transactions for a hold and its capture, want 2: %v", len(got), got)
		}
		check("checkout hold", got[0], 4, 1)
		check("checkout capture", got[1], 4, 2)

		if m, err := svc.GetMember(ctx, "m"); err != nil || m.Balance != 1300 || m.Pending != 0 {
			t.Fatalf("member after the redemption and the capture: %+v, %v", m, err)
		}
		if problems, err := svc.Verify(ctx); err != nil || len(problems) != 0 {
			t.Fatalf("Verify: %v, %v", problems, err)
		}
	})
}
