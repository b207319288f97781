package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestConcurrentTransactionsKeepTheirOwnOutcome: many writers at once (on
// SQLite they share commits) — each one's writes commit, or vanish when its
// function fails or panics, whatever the others did; on SQLite fewer commits
// than transactions are made.
func TestConcurrentTransactionsKeepTheirOwnOutcome(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp}, func(t *testing.T, d *db.DB) {
		rec.Reset()
		const n = 240
		boom := errors.New("boom")
		var wg sync.WaitGroup
		start := make(chan struct{})
		errsSeen := make([]error, n)
		panics := make([]any, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { panics[i] = recover() }()
				ctx, span := tracer.Start(context.Background(), "writer")
				defer span.End()
				<-start
				errsSeen[i] = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('g', $1, 'h', 'done', 0, 0)`, fmt.Sprint(i)); err != nil {
						return err
					}
					switch i % 6 {
					case 1:
						return boom
					case 2:
						panic(fmt.Sprintf("writer %d", i))
					case 3: // a duplicate: the statement fails, the others go on
						_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('g', $1, 'h', 'done', 0, 0)`, fmt.Sprint(i))
						return err
					}
					return nil
				})
			}()
		}
		close(start)
		wg.Wait()

		want := map[string]bool{}
		for i := range n {
			switch i % 6 {
			case 1:
				if !errors.Is(errsSeen[i], boom) {
					t.Errorf("writer %d: err %v, want boom", i, errsSeen[i])
				}
			case 2:
				if panics[i] != fmt.Sprintf("writer %d", i) {
					t.Errorf("writer %d: panic %v did not reach its caller", i, panics[i])
				}
			case 3:
				if !db.IsUniqueViolation(errsSeen[i]) {
					t.Errorf("writer %d: err %v, want a unique violation", i, errsSeen[i])
				}
			default:
				if errsSeen[i] != nil || panics[i] != nil {
					t.Errorf("writer %d: err %v panic %v", i, errsSeen[i], panics[i])
				}
				want[fmt.Sprint(i)] = true
			}
		}
		rows, err := d.Read().Query(`SELECT key FROM idempotency_keys WHERE owner = 'g'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]bool{}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			got[k] = true
		}
		if len(got) != len(want) {
			t.Errorf("%d rows committed, want %d", len(got), len(want))
		}
		for k := range got {
			if !want[k] {
				t.Errorf("row %s committed although its transaction failed", k)
			}
		}
		commits := 0
		for _, s := range rec.Ended() {
			if s.Name() == "sql.tx.commit" {
				commits++
			}
		}
		t.Logf("%s: %d commits for %d transactions", d.Engine(), commits, n)
		if d.Engine() == db.SQLite && commits >= len(want) {
			t.Errorf("%d commits for %d successful transactions: nothing was grouped", commits, len(want))
		}
	})
}

// TestSQLiteStatementSpansAreOptIn: on SQLite a transaction is traced by its
// begin and commit; its statements (in-process calls) only with
// SQLiteStatementSpans. PostgreSQL statements, round trips, always are.
func TestSQLiteStatementSpansAreOptIn(t *testing.T) {
	for _, withStatements := range []bool{false, true} {
		t.Run(fmt.Sprint("statements=", withStatements), func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, SQLiteStatementSpans: withStatements}, func(t *testing.T, d *db.DB) {
				rec.Reset()
				ctx, span := tp.Tracer("test").Start(context.Background(), "op")
				err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('s', 'k', 'h', 'done', 0, 0)`)
					return err
				})
				span.End()
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, s := range rec.Ended() {
					if s.Name() != "op" && s.Name() != "ledger.write_batch" {
						names = append(names, s.Name())
					}
				}
				want := "[sql.conn.begin_tx sql.conn.exec sql.tx.commit]"
				if d.Engine() == db.SQLite && !withStatements {
					want = "[sql.conn.begin_tx sql.tx.commit]"
				}
				if got := fmt.Sprint(names); got != want {
					t.Errorf("database spans %s, want %s", got, want)
				}
			})
		})
	}
}

// TestJoinedFailureStaysWithItsTransaction: writers whose transactions share a
// commit (SQLite) each join calls to their transaction (db.Join); one whose
// joined call fails rolls back alone, and the others' joined calls neither
// fail nor run again because of it.
func TestJoinedFailureStaysWithItsTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		const n = 240
		boom := errors.New("boom")
		var wg sync.WaitGroup
		start := make(chan struct{})
		errsSeen := make([]error, n)
		runs := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errsSeen[i] = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
					runs[i]++
					return d.InTx(db.Join(ctx, tx), func(ctx context.Context, tx *db.Tx) error {
						if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('j', $1, 'h', 'done', 0, 0)`, fmt.Sprint(i)); err != nil {
							return err
						}
						if i%3 == 1 {
							return boom
						}
						return nil
					})
				})
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			want := error(nil)
			if i%3 == 1 {
				want = boom
			}
			if !errors.Is(errsSeen[i], want) || (want == nil && errsSeen[i] != nil) {
				t.Errorf("writer %d: %v, want %v", i, errsSeen[i], want)
			}
			// A batch runs first without savepoints and, when one of its
			// writers fails, once more with a savepoint each: two runs. A
			// writer failed by another's joined call would be retried: three.
			if runs[i] > 2 {
				t.Errorf("writer %d ran %d times, want at most twice (it was retried)", i, runs[i])
			}
		}
		var got int
		if err := d.Read().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM idempotency_keys WHERE owner = 'j'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := n - n/3; got != want {
			t.Errorf("%d rows committed, want %d", got, want)
		}
	})
}
