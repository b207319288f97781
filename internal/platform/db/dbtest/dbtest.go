// Package dbtest gives each test a fresh, migrated database on every engine under
// test: always embedded SQLite, and PostgreSQL when GODWIT_TEST_POSTGRES holds a
// DSN. Each PostgreSQL database is a new schema, dropped when the test ends.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// EnvPostgres is the environment variable holding the PostgreSQL test DSN.
const EnvPostgres = "GODWIT_TEST_POSTGRES"

// Options tune the databases a test gets.
type Options = db.Options

// Each runs fn as a subtest once per engine under test, each with a fresh
// migrated database. The PostgreSQL subtest is skipped, saying why, when
// GODWIT_TEST_POSTGRES is unset.
func Each(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	EachWith(t, Options{}, fn)
}

// EachWith is Each with options for db.Open (e.g. a tracer provider).
func EachWith(t *testing.T, opts Options, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			fn(t, NewWith(t, e, opts))
		})
	}
}

// New returns a fresh migrated database on engine e, closed and dropped at cleanup.
func New(t testing.TB, e db.Engine) *db.DB {
	t.Helper()
	return NewWith(t, e, Options{})
}

// NewWith is New with options for db.Open.
func NewWith(t testing.TB, e db.Engine, opts Options) *db.DB {
	t.Helper()
	dsn := DSN(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := db.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("dbtest: open %s: %v", e, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := db.Migrate(ctx, d, nil); err != nil {
		t.Fatalf("dbtest: migrate %s: %v", e, err)
	}
	return d
}

// DSN returns a DSN for a fresh, empty database on engine e (not yet migrated),
// removed at cleanup. It skips the test when e is PostgreSQL and none is configured.
func DSN(t testing.TB, e db.Engine) string {
	t.Helper()
	if e == db.SQLite {
		return filepath.Join(t.TempDir(), "godwit.db")
	}
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skipf("dbtest: %s not set; PostgreSQL tests skipped", EnvPostgres)
	}
	schema := "gwt_" + randomHex(t, 8)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("dbtest: open postgres admin: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("dbtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("dbtest: bad %s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema) // pgx passes unknown parameters to the server as run-time settings
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("dbtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
