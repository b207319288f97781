package app

import (
	"context"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// BackupResult describes a finished backup: where from and to, its size,
// the schema version in the copy and how long it took.
type BackupResult = db.BackupResult

// Errors Backup returns for a destination that exists (without overwrite)
// and for a PostgreSQL database (which PostgreSQL's own tools back up).
var (
	ErrBackupExists   = db.ErrBackupExists
	ErrBackupPostgres = db.ErrBackupPostgres
)

// Backup writes a consistent copy of the embedded SQLite database named by
// dsn to dst, while servers keep using it (see db.BackupSQLite).
func Backup(ctx context.Context, dsn, dst string, overwrite bool) (BackupResult, error) {
	return db.BackupSQLite(ctx, dsn, dst, overwrite)
}
