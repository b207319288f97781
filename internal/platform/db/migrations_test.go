package db

import (
	"bytes"
	"io/fs"
	"testing"
)

// enginePairsThatDiffer are the migrations whose SQLite and PostgreSQL files
// must differ, each with why. Every other migration is the same SQL on both
// engines, byte for byte, so that the two schemas cannot drift apart.
var enginePairsThatDiffer = map[string]string{
	"00001_platform.sql":             "binary columns are BLOB on SQLite, BYTEA on PostgreSQL",
	"00010_loyalty.sql":              "an autoincrement key is an INTEGER PRIMARY KEY rowid on SQLite, an identity column on PostgreSQL",
	"00020_loyalty_members_debt.sql": "SQLite cannot drop a CHECK constraint: it rebuilds members outside a transaction",
	"00044_quantity_bounds.sql":      "SQLite adds a CHECK constraint only by rebuilding the table: triggers refuse out-of-bound values instead",
	"00046_ledger_write_indexes.sql": "SQLite cannot drop a column's UNIQUE constraint: it rebuilds the table outside a transaction",
	"00048_revocation_refresh.sql":   "PostgreSQL also notifies listeners of each revocation (trigger and pg_notify)",
	"00056_three_d_secure.sql":       "SQLite cannot change a CHECK constraint: it rebuilds payment_charges and checkouts outside a transaction",
	"00063_manual_capture.sql":       "SQLite cannot change a CHECK constraint: it rebuilds payment_charges and orders outside a transaction",
	"00064_fulfilments_started.sql":  "PostgreSQL builds the index concurrently, outside a transaction",
}

// TestMigrationPairs fails when a migration exists for one engine only, when
// a pair differs without being listed in enginePairsThatDiffer, and when a
// listed pair has become the same (the entry is stale) or no longer exists.
func TestMigrationPairs(t *testing.T) {
	sqlite, postgres := migrationFiles(t, "migrations/sqlite"), migrationFiles(t, "migrations/postgres")
	for name := range sqlite {
		if _, ok := postgres[name]; !ok {
			t.Errorf("%s exists for SQLite but not for PostgreSQL", name)
		}
	}
	for name := range postgres {
		if _, ok := sqlite[name]; !ok {
			t.Errorf("%s exists for PostgreSQL but not for SQLite", name)
		}
	}
	for name, lite := range sqlite {
		pg, ok := postgres[name]
		if !ok {
			continue
		}
		_, mayDiffer := enginePairsThatDiffer[name]
		switch same := bytes.Equal(lite, pg); {
		case !same && !mayDiffer:
			t.Errorf("%s differs between migrations/sqlite and migrations/postgres; make them the same, "+
				"or list it in enginePairsThatDiffer with the reason", name)
		case same && mayDiffer:
			t.Errorf("%s is the same on both engines: remove it from enginePairsThatDiffer", name)
		}
	}
	for name := range enginePairsThatDiffer {
		if _, ok := sqlite[name]; !ok {
			t.Errorf("enginePairsThatDiffer lists %s, which is not a migration", name)
		}
	}
}

// migrationFiles returns the embedded migrations of one engine by file name.
func migrationFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(migrations, dir+"/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	if len(out) == 0 {
		t.Fatalf("%s: no migrations found", dir)
	}
	return out
}
