package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// migrationStates maps each migration this binary has to its state.
func migrationStates(t *testing.T, d *db.DB) map[int64]string {
	t.Helper()
	st, err := db.MigrationStatus(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for _, s := range st {
		out[s.Source.Version] = string(s.State)
	}
	return out
}

// TestMigrateDownOneStep rolls back the last two migrations one at a time,
// in the order they were applied, and migrates up again: every Down section
// undoes its Up, so the Up runs cleanly a second time.
func TestMigrateDownOneStep(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		before := migrationStates(t, d)
		var rolledBack []int64
		for range 2 {
			last, err := db.LastApplied(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.MigrateDown(ctx, d, nil)
			if err != nil {
				t.Fatalf("down: %v", err)
			}
			if got != last || got.Path == "" {
				t.Fatalf("down rolled back %+v, LastApplied said %+v", got, last)
			}
			if s := migrationStates(t, d)[got.Version]; s != "pending" {
				t.Fatalf("%s after down: %s, want pending", got.Path, s)
			}
			rolledBack = append(rolledBack, got.Version)
		}
		if rolledBack[0] <= rolledBack[1] {
			t.Errorf("rolled back %v: want the most recently applied first", rolledBack)
		}
		if err := db.Migrate(ctx, d, nil); err != nil {
			t.Fatalf("up again: %v", err)
		}
		after := migrationStates(t, d)
		for v, s := range before {
			if after[v] != s {
				t.Errorf("migration %d: %s after down and up, was %s", v, after[v], s)
			}
		}
	})
}

// TestNewerSchemaStillStarts: a database migrated by a later release (a
// version this binary does not have) still migrates and starts — what lets
// an old replica restart during a rolling upgrade — and is reported; down
// refuses to roll back what this binary does not know.
func TestNewerSchemaStillStarts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		const later = 99999
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, later)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, d, nil); err != nil {
			t.Fatalf("migrate with a later release's version applied: %v", err)
		}
		unknown, err := db.UnknownMigrations(ctx, d)
		if err != nil || len(unknown) != 1 || unknown[0] != later {
			t.Fatalf("UnknownMigrations = %v, %v; want [%d]", unknown, err, later)
		}
		if last, err := db.LastApplied(ctx, d); err != nil || last.Version != later || last.Path != "" {
			t.Fatalf("LastApplied = %+v, %v", last, err)
		}
		_, err = db.MigrateDown(ctx, d, nil)
		if err == nil || !strings.Contains(err.Error(), "later release") {
			t.Fatalf("down of an unknown migration: %v", err)
		}
		if s := migrationStates(t, d); len(s) == 0 {
			t.Fatal("no migrations")
		} else {
			for v, st := range s {
				if st != "applied" {
					t.Errorf("migration %d became %s after a refused down", v, st)
				}
			}
		}
	})
}

// TestConcurrentMigrators starts several migrators on one fresh database at
// once, as replicas starting together do: every one succeeds and each
// migration is applied exactly once.
func TestConcurrentMigrators(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			ctx := context.Background()
			dsn := dbtest.DSN(t, e)
			const n = 4
			dbs := make([]*db.DB, n)
			for i := range dbs {
				d, err := db.Open(ctx, dsn, db.Options{MaxOpenConns: 4})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = d.Close() })
				dbs[i] = d
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i, d := range dbs {
				wg.Go(func() {
					<-start
					errs[i] = db.Migrate(ctx, d, nil)
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("concurrent migrators: %v", err)
			}
			rows, err := dbs[0].Read().QueryContext(ctx, `SELECT version_id, COUNT(*) FROM goose_db_version GROUP BY version_id HAVING COUNT(*) > 1`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var v, c int64
				if err := rows.Scan(&v, &c); err != nil {
					t.Fatal(err)
				}
				t.Errorf("migration %d recorded %d times", v, c)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for v, s := range migrationStates(t, dbs[n-1]) {
				if s != "applied" {
					t.Errorf("migration %d: %s", v, s)
				}
			}
		})
	}
}
