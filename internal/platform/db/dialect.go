package db

import (
	"context"
	"database/sql"
	"fmt"
)

// Dialect is everything business code needs to know about how the engine
// under it differs, in one place. Business code says what it wants (lock
// these rows, claim rows no other worker holds, read one snapshot, book a
// write of several tables in one statement) and the dialect says how, so no
// domain package compares engines.
//
// The differences come from two facts. SQLite has one writer: a write
// transaction (BEGIN IMMEDIATE) already holds the database's only write
// lock, so row locks are empty there, and its statements are in-process calls
// with no round trip to save. PostgreSQL locks rows, runs writers
// concurrently and is a network round trip away, so it gets explicit locks
// and one-statement writes of data-modifying CTEs.
type Dialect struct{ engine Engine }

// DialectOf returns engine e's dialect.
func DialectOf(e Engine) Dialect { return Dialect{engine: e} }

// Dialect returns the dialect of d's engine.
func (d *DB) Dialect() Dialect { return DialectOf(d.Engine()) }

// Dialect returns the dialect of tx's engine.
func (tx *Tx) Dialect() Dialect { return DialectOf(tx.Engine()) }

// Engine names the dialect's engine (for logs and readiness, not for
// branching: ask the dialect what you need instead).
func (d Dialect) Engine() Engine { return d.engine }

// ForUpdate is the suffix of a SELECT that locks the rows it reads until the
// transaction ends: " FOR UPDATE" on PostgreSQL, "" on SQLite. tx.ForUpdate()
// is the same.
func (d Dialect) ForUpdate() string { return ForUpdate(d.engine) }

// ForUpdateOf is ForUpdate for a join that should lock only the rows of the
// table aliased alias (" FOR UPDATE OF m"), leaving the joined rows unlocked.
func (d Dialect) ForUpdateOf(alias string) string {
	if d.engine == Postgres {
		return " FOR UPDATE OF " + alias
	}
	return ""
}

// SkipLocked is the suffix of a SELECT with which concurrent workers claim
// disjoint rows: each locks the rows it reads and skips those another holds
// (" FOR UPDATE SKIP LOCKED"). On SQLite it is empty: one writer at a time
// claims, so there is nothing to skip.
func (d Dialect) SkipLocked() string {
	if d.engine == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// SkipLockedOf is SkipLocked for a join that should claim only the rows of
// the table aliased alias (" FOR UPDATE OF d SKIP LOCKED"), leaving the
// joined rows unlocked.
func (d Dialect) SkipLockedOf(alias string) string {
	if d.engine == Postgres {
		return " FOR UPDATE OF " + alias + " SKIP LOCKED"
	}
	return ""
}

// WritableCTEs reports whether the engine runs data-modifying statements
// inside WITH (WITH t AS (INSERT …), u AS (UPDATE …) SELECT …), so that a
// write of several tables is one statement and one round trip. PostgreSQL
// does; SQLite does not, and has no round trips to save: there the same
// write is a sequence of plain statements.
func (d Dialect) WritableCTEs() bool { return d.engine == Postgres }

// JSONArrayRows is a FROM item yielding one row per element of the JSON
// array passed as parameter $n, the element in column value (read fields
// with value->>0, value->>'name'): a set-based statement takes a whole batch
// of rows as one parameter, so its text is the same for any batch size.
func (d Dialect) JSONArrayRows(n int) string {
	if d.engine == Postgres {
		return fmt.Sprintf(`jsonb_array_elements($%d::jsonb) AS j%d(value)`, n, n)
	}
	return fmt.Sprintf(`jsonb_each($%d)`, n)
}

// SnapshotTxOptions are the options of a read-only transaction whose every
// statement sees the same snapshot: repeatable read on PostgreSQL (where read
// committed, the default, takes a new snapshot per statement); on SQLite a
// read transaction in WAL mode is a snapshot already, and asking for another
// isolation level would fail.
func (d Dialect) SnapshotTxOptions() *sql.TxOptions {
	opts := &sql.TxOptions{ReadOnly: true}
	if d.engine == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return opts
}

// ReadSnapshot begins a read-only transaction on the read pool in which every
// statement sees one consistent snapshot of the database, for checks that
// compare several tables while writers are busy (Verify). The caller rolls it
// back when done.
func (d *DB) ReadSnapshot(ctx context.Context) (*sql.Tx, error) {
	tx, err := d.Read().BeginTx(ctx, d.Dialect().SnapshotTxOptions())
	if err != nil {
		return nil, fmt.Errorf("db: begin snapshot: %w", err)
	}
	return tx, nil
}
