package db_test

import (
	"context"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestApplicationName checks that Godwit's PostgreSQL sessions name
// themselves (application_name), so that pg_stat_activity, the server log and
// an operator's pg_terminate_backend can tell them from others: the default,
// Options.ApplicationName, and a DSN's own setting, which wins.
func TestApplicationName(t *testing.T) {
	dsn := dbtest.DSN(t, db.Postgres) // skips without GODWIT_TEST_POSTGRES
	for _, c := range []struct {
		name, dsn, option, want string
	}{
		{"default", dsn, "", db.DefaultApplicationName},
		{"option", dsn, "godwit-inventory", "godwit-inventory"},
		{"dsn", dsn + "&application_name=ops-console", "godwit-inventory", "ops-console"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			d, err := db.Open(ctx, c.dsn, db.Options{ApplicationName: c.option})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var got string
			if err := d.Read().QueryRowContext(ctx, `SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("application_name = %q, want %q", got, c.want)
			}
		})
	}
}

// TestInTxRerunsAfterTheConnectionIsLost terminates the transaction's own
// backend in its first attempt, before the commit: the transaction rolled
// back, so InTx runs it again on a fresh connection, and its write is made
// once. Before, the caller got the lost connection's error.
func TestInTxRerunsAfterTheConnectionIsLost(t *testing.T) {
	d := dbtest.New(t, db.Postgres)
	ctx := context.Background()
	if _, err := d.Read().ExecContext(ctx, `CREATE TABLE lost_conn (id INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		attempts++
		if _, err := tx.ExecContext(ctx, `INSERT INTO lost_conn (id) VALUES (1)`); err != nil {
			return err
		}
		if attempts == 1 {
			// The backend ends itself, as an operator's pg_terminate_backend would.
			_, err := tx.ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx after the connection was lost: %v", err)
	}
	if attempts != 2 {
		t.Errorf("%d attempts, want 2", attempts)
	}
	var n int
	if err := d.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM lost_conn`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d rows (%v), want 1", n, err)
	}
}
