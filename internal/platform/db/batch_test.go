package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// errInsufficient is the rule failure of the tests' toy account.
var errInsufficient = errors.New("insufficient balance")

// createAccount makes a one-row account table holding balance.
func createAccount(t *testing.T, d *db.DB, balance int64) {
	t.Helper()
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE batch_accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL, version BIGINT NOT NULL)`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO batch_accounts (id, balance, version) VALUES ('a', $1, 0)`, balance)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// move adds delta to the account under the rule that it never goes below
// zero, read-then-write as ledger code does under a member lock, and records
// the request in a journal so the test can see what committed in which order.
func move(ctx context.Context, tx *db.Tx, name string, delta int64) error {
	var balance, version int64
	if err := tx.QueryRowContext(ctx, `SELECT balance, version FROM batch_accounts WHERE id = 'a'`+tx.ForUpdate()).Scan(&balance, &version); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('batch', $1, 'h', 'done', $2, 0)`, name, version+1); err != nil {
		return err
	}
	if balance+delta < 0 {
		return errInsufficient // after a write, so the failure must be undone
	}
	_, err := tx.ExecContext(ctx, `UPDATE batch_accounts SET balance = $1, version = $2 WHERE id = 'a'`, balance+delta, version+1)
	return err
}

func journal(t *testing.T, d *db.DB) []string {
	t.Helper()
	rows, err := d.Read().Query(`SELECT key FROM idempotency_keys WHERE owner = 'batch' ORDER BY created_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func balance(t *testing.T, d *db.DB) int64 {
	t.Helper()
	var b int64
	if err := d.Read().QueryRow(`SELECT balance FROM batch_accounts WHERE id = 'a'`).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchAppliesInOrderAndFailsAlone: requests queued behind a busy writer
// share one batch and one commit; they apply in arrival order against the
// running balance, never below zero; the ones that break the rule (or panic,
// or hit a constraint) fail alone with their own error and leave nothing,
// while the rest of the batch commits.
func TestBatchAppliesInOrderAndFailsAlone(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	opts := dbtest.Options{TracerProvider: tp, Batching: db.Batching{Writers: 1}}
	dbtest.EachWith(t, opts, func(t *testing.T, d *db.DB) {
		createAccount(t, d, 10)
		rec.Reset()
		type step struct {
			name    string
			delta   int64
			wantErr error // errInsufficient, or nil
		}
		// Arrival order decides the outcome: 10 -4 -4 (-4 fails) +5 -4 (-9 fails) -3 = 0.
		steps := []step{
			{"s1", -4, nil}, {"s2", -4, nil}, {"s3", -4, errInsufficient}, {"s4", 5, nil},
			{"s5", -4, nil}, {"s6", -9, errInsufficient}, {"s7", -3, nil},
		}
		release := dbtest.HoldWriter(t, d)
		var wg sync.WaitGroup
		got := make([]error, len(steps))
		var panicked any
		for i, s := range steps {
			dbtest.Enqueue(t, d, &wg, func() {
				ctx, span := tp.Tracer("test").Start(context.Background(), s.name)
				defer span.End()
				got[i] = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return move(ctx, tx, s.name, s.delta) })
			})
		}
		dbtest.Enqueue(t, d, &wg, func() {
			defer func() { panicked = recover() }()
			_ = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				if err := move(ctx, tx, "panics", 1); err != nil {
					return err
				}
				panic("writer panicked")
			})
		})
		var dupErr error
		dbtest.Enqueue(t, d, &wg, func() {
			dupErr = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				return move(ctx, tx, "s1", 1) // s1's journal key again: a unique violation
			})
		})
		release()
		wg.Wait()

		var want []string
		for i, s := range steps {
			if !errors.Is(got[i], s.wantErr) || (s.wantErr == nil && got[i] != nil) {
				t.Errorf("%s: err %v, want %v", s.name, got[i], s.wantErr)
			}
			if s.wantErr == nil {
				want = append(want, s.name)
			}
		}
		if panicked != "writer panicked" {
			t.Errorf("panic %v did not reach its caller", panicked)
		}
		if !db.IsUniqueViolation(dupErr) {
			t.Errorf("duplicate: err %v, want a unique violation", dupErr)
		}
		if b := balance(t, d); b != 0 {
			t.Errorf("balance %d, want 0", b)
		}
		if j := fmt.Sprint(journal(t, d)); j != fmt.Sprint(want) {
			t.Errorf("committed %s, want %s in that order", j, want)
		}

		// One batch of all nine after the blocker, with a commit of its own.
		var batches []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == "ledger.write_batch" {
				batches = append(batches, s)
			}
		}
		if len(batches) != 2 {
			t.Fatalf("%d batches, want 2 (the blocker, then everything queued behind it)", len(batches))
		}
		batch := batches[1]
		attrs := map[string]any{}
		for _, kv := range batch.Attributes() {
			attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		if attrs["ledger.batch.size"] != int64(len(steps)+2) || attrs["ledger.batch.failed"] != int64(4) {
			t.Errorf("batch attributes %v, want size %d with 4 failed", attrs, len(steps)+2)
		}
		// Every request's span links to the batch, or is its parent.
		linked := 0
		for _, s := range rec.Ended() {
			if len(s.Name()) != 2 || s.Name()[0] != 's' {
				continue
			}
			isParent := batch.Parent().SpanID() == s.SpanContext().SpanID()
			for _, l := range s.Links() {
				if l.SpanContext.SpanID() == batch.SpanContext().SpanID() {
					linked++
				}
			}
			if isParent {
				linked++
			}
		}
		if linked != len(steps) {
			t.Errorf("%d of %d request spans link to their batch", linked, len(steps))
		}
	})
}

// TestBatchOfManyRequestsOnOneRow: 64 concurrent withdrawals from one account
// of 40 spend exactly 40, on every engine and batch shape.
func TestBatchOfManyRequestsOnOneRow(t *testing.T) {
	for _, b := range []db.Batching{{}, {MaxSize: 1}, {Writers: 4, MaxSize: 8}, {Linger: time.Millisecond}} {
		t.Run(fmt.Sprintf("size=%d,writers=%d,linger=%s", b.MaxSize, b.Writers, b.Linger), func(t *testing.T) {
			dbtest.EachWith(t, dbtest.Options{Batching: b}, func(t *testing.T, d *db.DB) {
				createAccount(t, d, 40)
				var wg sync.WaitGroup
				start := make(chan struct{})
				var mu sync.Mutex
				spent, refused := 0, 0
				for i := range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
							return move(ctx, tx, fmt.Sprint("w", i), -1)
						})
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							spent++
						case errors.Is(err, errInsufficient):
							refused++
						default:
							t.Errorf("withdrawal %d: %v", i, err)
						}
					}()
				}
				close(start)
				wg.Wait()
				if spent != 40 || refused != 24 || balance(t, d) != 0 || len(journal(t, d)) != 40 {
					t.Errorf("spent %d, refused %d, balance %d, journal %d; want 40, 24, 0, 40",
						spent, refused, balance(t, d), len(journal(t, d)))
				}
			})
		})
	}
}

// TestBatchCallerGivingUp: a request whose caller's context ends while it
// waits in the queue does not run; the rest of its batch commits.
func TestBatchCallerGivingUp(t *testing.T) {
	dbtest.EachWith(t, dbtest.Options{Batching: db.Batching{Writers: 1}}, func(t *testing.T, d *db.DB) {
		createAccount(t, d, 10)
		release := dbtest.HoldWriter(t, d)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		var gaveUp, kept error
		dbtest.Enqueue(t, d, &wg, func() {
			gaveUp = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return move(ctx, tx, "gave-up", -1) })
		})
		dbtest.Enqueue(t, d, &wg, func() {
			kept = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error { return move(ctx, tx, "kept", -1) })
		})
		cancel()
		release()
		wg.Wait()
		if !errors.Is(gaveUp, context.Canceled) || kept != nil {
			t.Errorf("gave up: %v, kept: %v", gaveUp, kept)
		}
		if j := fmt.Sprint(journal(t, d)); j != "[kept]" || balance(t, d) != 9 {
			t.Errorf("journal %s balance %d, want [kept] 9", j, balance(t, d))
		}
	})
}

// TestBatchingOptions: out-of-range settings are refused when opening.
func TestBatchingOptions(t *testing.T) {
	for _, b := range []db.Batching{{MaxSize: 65}, {MaxSize: -1}, {Linger: -time.Millisecond}, {Linger: 2 * time.Second}} {
		_, err := db.Open(context.Background(), t.TempDir()+"/x.db", db.Options{Batching: b})
		if err == nil {
			t.Errorf("%+v: opened, want an error", b)
		}
	}
	// PostgreSQL writers may hold at most half the pool: a writer may wait
	// for a read connection.
	dsn := dbtest.DSN(t, db.Postgres)
	if _, err := db.Open(context.Background(), dsn, db.Options{MaxOpenConns: 8, Batching: db.Batching{Writers: 5}}); err == nil {
		t.Error("5 writers on an 8-connection pool: opened, want an error")
	}
	d, err := db.Open(context.Background(), dsn, db.Options{MaxOpenConns: 8, Batching: db.Batching{Writers: 4}})
	if err != nil {
		t.Fatalf("4 writers on an 8-connection pool: %v", err)
	}
	_ = d.Close()
}

// TestBatchJoinedFailureStaysWithItsRequest: a request whose joined call
// fails (see db.Join) does not spoil the requests after it in its batch —
// they commit in that same batch, not on a retry — and a request that goes
// on after its joined call failed gets an error and leaves nothing.
func TestBatchJoinedFailureStaysWithItsRequest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, Batching: db.Batching{Writers: 1}}, func(t *testing.T, d *db.DB) {
		createAccount(t, d, 10)
		rec.Reset()
		joined := func(ctx context.Context, tx *db.Tx, name string, delta int64) error {
			return d.InTx(db.Join(ctx, tx), func(ctx context.Context, tx *db.Tx) error { return move(ctx, tx, name, delta) })
		}
		release := dbtest.HoldWriter(t, d)
		var wg sync.WaitGroup
		var failed, ignored, after error
		dbtest.Enqueue(t, d, &wg, func() {
			failed = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				return joined(ctx, tx, "failed", -11) // insufficient, after writing
			})
		})
		dbtest.Enqueue(t, d, &wg, func() {
			ignored = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				_ = joined(ctx, tx, "ignored", -12)
				return nil // goes on as if the joined call had worked
			})
		})
		dbtest.Enqueue(t, d, &wg, func() {
			ctx, span := tp.Tracer("test").Start(context.Background(), "after")
			defer span.End()
			after = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return joined(ctx, tx, "after", -3) })
		})
		release()
		wg.Wait()
		if !errors.Is(failed, errInsufficient) || !errors.Is(ignored, errInsufficient) || after != nil {
			t.Errorf("failed: %v; ignored: %v; after: %v", failed, ignored, after)
		}
		if j := fmt.Sprint(journal(t, d)); j != "[after]" || balance(t, d) != 7 {
			t.Errorf("journal %s balance %d, want [after] 7", j, balance(t, d))
		}
		// Count the batches "after" ran in: those it parents or links to.
		var afterSpan sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == "after" {
				afterSpan = s
			}
		}
		if afterSpan == nil {
			t.Fatal("no span for the request after the failure")
		}
		batches := 0
		for _, s := range rec.Ended() {
			if s.Name() != "ledger.write_batch" {
				continue
			}
			related := s.Parent().SpanID() == afterSpan.SpanContext().SpanID()
			for _, l := range s.Links() {
				related = related || l.SpanContext.SpanID() == afterSpan.SpanContext().SpanID()
			}
			if related {
				batches++
			}
		}
		if batches != 1 {
			t.Errorf("the request after the failure ran in %d batches, want 1 (it was retried)", batches)
		}
	})
}
