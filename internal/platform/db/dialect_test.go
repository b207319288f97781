package db_test

import (
	"context"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestDialectSuffixes(t *testing.T) {
	for _, c := range []struct {
		engine                             db.Engine
		forUpdate, forUpdateOf, skipLocked string
		writableCTEs                       bool
	}{
		{db.Postgres, " FOR UPDATE", " FOR UPDATE OF m", " FOR UPDATE SKIP LOCKED", true},
		{db.SQLite, "", "", "", false},
	} {
		d := db.DialectOf(c.engine)
		if got := d.ForUpdate(); got != c.forUpdate {
			t.Errorf("%s ForUpdate %q, want %q", c.engine, got, c.forUpdate)
		}
		if got := d.ForUpdateOf("m"); got != c.forUpdateOf {
			t.Errorf("%s ForUpdateOf %q, want %q", c.engine, got, c.forUpdateOf)
		}
		if got := d.SkipLocked(); got != c.skipLocked {
			t.Errorf("%s SkipLocked %q, want %q", c.engine, got, c.skipLocked)
		}
		if got, want := d.SkipLockedOf("d"), map[db.Engine]string{db.Postgres: " FOR UPDATE OF d SKIP LOCKED"}[c.engine]; got != want {
			t.Errorf("%s SkipLockedOf %q, want %q", c.engine, got, want)
		}
		if got := d.WritableCTEs(); got != c.writableCTEs {
			t.Errorf("%s WritableCTEs %v, want %v", c.engine, got, c.writableCTEs)
		}
	}
}

// TestDialectRunsOnEachEngine runs the dialect's SQL on the engine it is
// for: a lock suffix and a claim suffix on a join, and a one-statement
// write where the dialect offers it.
func TestDialectRunsOnEachEngine(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if tx.Dialect() != d.Dialect() || tx.Dialect().Engine() != d.Engine() {
				t.Errorf("tx dialect %v, db dialect %v", tx.Dialect(), d.Dialect())
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE dialect_a (id TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE dialect_b (id TEXT PRIMARY KEY, a_id TEXT NOT NULL)`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO dialect_a (id, n) VALUES ('x', 1)`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO dialect_b (id, a_id) VALUES ('y', 'x')`); err != nil {
				return err
			}
			var n int64
			if err := tx.QueryRowContext(ctx, `SELECT a.n FROM dialect_a a JOIN dialect_b b ON b.a_id = a.id WHERE a.id = $1`+
				tx.Dialect().ForUpdateOf("a"), "x").Scan(&n); err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx, `SELECT n FROM dialect_a ORDER BY id LIMIT 1`+tx.Dialect().SkipLocked()).Scan(&n); err != nil {
				return err
			}
			if tx.Dialect().WritableCTEs() {
				if err := tx.QueryRowContext(ctx, `WITH u AS (UPDATE dialect_a SET n = n + 1 WHERE id = 'x' RETURNING n),
					i AS (INSERT INTO dialect_b (id, a_id) SELECT 'z', 'x' FROM u) SELECT n FROM u`).Scan(&n); err != nil {
					return err
				}
				if n != 2 {
					t.Errorf("writable CTE returned %d, want 2", n)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestReadSnapshot checks that every statement of a snapshot read sees the
// database as of its first read, whatever commits meanwhile: Verify relies
// on it to compare tables while writers are busy.
func TestReadSnapshot(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		exec := func(q string) {
			t.Helper()
			if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		exec(`CREATE TABLE snap (n BIGINT NOT NULL)`)
		exec(`INSERT INTO snap (n) VALUES (1)`)
		snap, err := d.ReadSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = snap.Rollback() }()
		count := func() int64 {
			t.Helper()
			var n int64
			if err := snap.QueryRowContext(ctx, `SELECT COUNT(*) FROM snap`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(); n != 1 {
			t.Fatalf("snapshot sees %d rows, want 1", n)
		}
		exec(`INSERT INTO snap (n) VALUES (2)`)
		if n := count(); n != 1 {
			t.Errorf("snapshot sees %d rows after a later commit, want the 1 it saw first", n)
		}
		if _, err := snap.ExecContext(ctx, `INSERT INTO snap (n) VALUES (3)`); err == nil {
			t.Error("a snapshot read accepted a write")
		}
	})
}
