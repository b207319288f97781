//go:build !unix

package db

import (
	"context"
	"database/sql"
)

// sqliteMigrationLock does nothing where flock is missing: processes that
// share one SQLite file must then be started one after another the first
// time (or run `godwit migrate` first).
type sqliteMigrationLock struct{}

func newSQLiteMigrationLock(string) *sqliteMigrationLock { return &sqliteMigrationLock{} }

func (*sqliteMigrationLock) SessionLock(context.Context, *sql.Conn) error   { return nil }
func (*sqliteMigrationLock) SessionUnlock(context.Context, *sql.Conn) error { return nil }
