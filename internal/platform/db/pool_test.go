package db_test

import (
	"context"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// MaxOpenConns sizes the pool every process opens (the PostgreSQL pool, the
// SQLite readers): the connection budget of docs/operations.md rests on it.
func TestMaxOpenConnsSizesThePool(t *testing.T) {
	for _, c := range []struct {
		set, want int
	}{{0, db.DefaultMaxOpenConns}, {2, 2}, {5, 5}} {
		dbtest.EachWith(t, dbtest.Options{MaxOpenConns: c.set}, func(t *testing.T, d *db.DB) {
			if got := d.Read().Stats().MaxOpenConnections; got != c.want {
				t.Errorf("MaxOpenConns %d: pool of %d, want %d", c.set, got, c.want)
			}
			// A pool of two still runs concurrent writers that read through
			// the pool: the writers default to half the pool.
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
						var n int
						if err := d.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_keys").Scan(&n); err != nil {
							return err
						}
						_, err := tx.ExecContext(ctx, "SELECT 1")
						return err
					})
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestMaxOpenConnsBelowTwoIsRefused(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			if d, err := db.Open(context.Background(), dbtest.DSN(t, e), db.Options{MaxOpenConns: 1}); err == nil {
				_ = d.Close()
				t.Fatal("a pool of one connection was accepted")
			}
			// Two writers need a pool of four.
			if d, err := db.Open(context.Background(), dbtest.DSN(t, e), db.Options{MaxOpenConns: 3, Batching: db.Batching{Writers: 2}}); (err == nil) != (e == db.SQLite) {
				if d != nil {
					_ = d.Close()
				}
				t.Fatalf("two writers in a pool of three: err %v", err)
			} else if d != nil {
				_ = d.Close()
			}
		})
	}
}
