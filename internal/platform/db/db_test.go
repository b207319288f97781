package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestMigrateUpOnEachEngine(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		st, err := db.MigrationStatus(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 0 {
			t.Fatal("no migrations found")
		}
		for _, s := range st {
			if s.State != "applied" {
				t.Errorf("migration %d (%s) is %s, want applied", s.Source.Version, s.Source.Path, s.State)
			}
		}
		// Running again is a no-op, as when a second replica starts.
		if err := db.Migrate(ctx, d, nil); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		var n int
		if err := d.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_keys").Scan(&n); err != nil {
			t.Fatalf("platform table missing: %v", err)
		}
	})
}

// TestInTxConcurrentIncrements runs many concurrent read-modify-write
// transactions; none may be lost and none may surface a busy/locked error.
func TestInTxConcurrentIncrements(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('t', 'counter', '0', 'done', 0, 0)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		const workers, each = 16, 20
		var wg sync.WaitGroup
		errc := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					errc <- d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
						var n int64
						if err := tx.QueryRowContext(ctx, `SELECT created_at FROM idempotency_keys WHERE owner = 't' AND key = 'counter'`+tx.ForUpdate()).Scan(&n); err != nil {
							return err
						}
						_, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET created_at = $1 WHERE owner = 't' AND key = 'counter'`, n+1)
						return err
					})
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatalf("transaction failed: %v", err)
			}
		}
		var got int64
		if err := d.Read().QueryRowContext(ctx, `SELECT created_at FROM idempotency_keys WHERE owner = 't' AND key = 'counter'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != workers*each {
			t.Fatalf("counter = %d, want %d (lost updates)", got, workers*each)
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('t', 'k', 'h', 'done', 0, 0)`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		var n int
		if err := d.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM idempotency_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("rolled-back insert is visible: %d rows", n)
		}
	})
}

func TestInTxRefusesNesting(t *testing.T) {
	d := dbtest.New(t, db.SQLite)
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		return d.InTx(ctx, func(context.Context, *db.Tx) error { return nil })
	})
	if !errors.Is(err, db.ErrNestedTx) {
		t.Fatalf("err = %v, want ErrNestedTx", err)
	}
}

func TestUniqueViolationIsRecognised(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		ins := func() error {
			return d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('t', 'dup', 'h', 'done', 0, 0)`)
				return err
			})
		}
		if err := ins(); err != nil {
			t.Fatal(err)
		}
		err := ins()
		if !db.IsUniqueViolation(err) {
			t.Fatalf("IsUniqueViolation(%v) = false", err)
		}
		if db.IsRetryable(err) {
			t.Fatalf("a unique violation must not be retried: %v", err)
		}
	})
}

func TestIsRetryableOnPlainErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("x"), fmt.Errorf("wrapped: %w", errors.New("y"))} {
		if db.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true", err)
		}
	}
}

func TestJoinRunsInsideTheOuterTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		insert := func(ctx context.Context, tx *db.Tx, key string) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('join', $1, 'h', 'done', 0, 0)`, key)
			return err
		}
		keys := func() string {
			t.Helper()
			rows, err := d.Read().QueryContext(ctx, `SELECT key FROM idempotency_keys WHERE owner = 'join' ORDER BY key`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var ks []string
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					t.Fatal(err)
				}
				ks = append(ks, k)
			}
			return fmt.Sprint(ks)
		}
		boom := errors.New("boom")

		// Joined calls that succeed commit with the outer transaction; nested
		// joins run in it too.
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if err := insert(ctx, tx, "a-outer"); err != nil {
				return err
			}
			jctx := db.Join(ctx, tx)
			if err := d.InTx(jctx, func(ctx context.Context, tx *db.Tx) error { return insert(ctx, tx, "b-joined") }); err != nil {
				return err
			}
			if err := d.InTx(jctx, func(ctx context.Context, tx *db.Tx) error {
				return d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return insert(ctx, tx, "c-nested") })
			}); err != nil {
				return err
			}
			if tx.JoinFailed() {
				return errors.New("JoinFailed after only successful joined calls")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keys(), "[a-outer b-joined c-nested]"; got != want {
			t.Fatalf("committed keys %s, want %s", got, want)
		}

		// A joined call that fails (here after writing, and with a unique
		// violation, which aborts the transaction on PostgreSQL) marks the
		// transaction failed; the next joined call is refused with a retryable
		// error, so the owner rolls back and starts again.
		for _, failure := range []string{"error", "unique"} {
			attempts := 0
			err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				attempts++
				jctx := db.Join(ctx, tx)
				err := d.InTx(jctx, func(ctx context.Context, tx *db.Tx) error {
					if err := insert(ctx, tx, "d-"+failure); err != nil {
						return err
					}
					if failure == "unique" && attempts == 1 {
						return insert(ctx, tx, "a-outer")
					}
					if failure == "error" && attempts == 1 {
						return boom
					}
					return nil
				})
				if attempts == 1 {
					if err == nil || !tx.JoinFailed() {
						return fmt.Errorf("first attempt: err %v, JoinFailed %v", err, tx.JoinFailed())
					}
					next := d.InTx(jctx, func(ctx context.Context, tx *db.Tx) error { return insert(ctx, tx, "e-never") })
					if !errors.Is(next, db.ErrJoinedTxFailed) || !db.IsRetryable(next) {
						return fmt.Errorf("joined call after a failure = %v, want retryable ErrJoinedTxFailed", next)
					}
					return next
				}
				return err
			})
			if err != nil || attempts != 2 {
				t.Fatalf("%s: err %v after %d attempts, want success on the second", failure, err, attempts)
			}
		}
		if got, want := keys(), "[a-outer b-joined c-nested d-error d-unique]"; got != want {
			t.Fatalf("after retried failures keys %s, want %s", got, want)
		}

		// When the outer transaction rolls back, so do the joined writes.
		err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if err := d.InTx(db.Join(ctx, tx), func(ctx context.Context, tx *db.Tx) error { return insert(ctx, tx, "f-rolled-back") }); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if got, want := keys(), "[a-outer b-joined c-nested d-error d-unique]"; got != want {
			t.Fatalf("after rollback keys %s, want %s", got, want)
		}
	})
}

func TestJoinDoesNotCrossDatabases(t *testing.T) {
	a, b := dbtest.New(t, db.SQLite), dbtest.New(t, db.SQLite)
	ctx := context.Background()
	err := a.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		// b's transaction is its own: it commits even though a's rolls back.
		if err := b.InTx(db.Join(ctx, tx), func(ctx context.Context, btx *db.Tx) error {
			_, err := btx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('x', 'y', 'h', 'done', 0, 0)`)
			return err
		}); err != nil {
			return err
		}
		return errors.New("roll a back")
	})
	if err == nil || err.Error() != "roll a back" {
		t.Fatalf("err = %v", err)
	}
	var n int
	if err := b.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("b has %d rows, want 1 (its own committed transaction)", n)
	}
}

func TestInList(t *testing.T) {
	ph, args := db.InList(3, []string{"a", "b", "c"})
	if ph != "$3, $4, $5" || fmt.Sprint(args) != "[a b c]" {
		t.Fatalf("InList = %q %v", ph, args)
	}
	if ph, args := db.InList(1, nil); ph != "" || len(args) != 0 {
		t.Fatalf("InList(nil) = %q %v", ph, args)
	}
}
