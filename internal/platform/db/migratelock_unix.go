//go:build unix

package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// sqliteMigrationLock makes the processes that migrate one SQLite file take
// turns, as the advisory lock does on PostgreSQL: split mode on one machine
// starts several processes on the same file at once, and two goose runs
// would both try to apply the first pending migration (the second failing
// with "table … already exists"). SQLite's own locks cannot do it: goose
// runs each migration in a transaction of its own, so the exclusion must
// outlast a transaction. An flock on a file beside the database does, and
// the kernel releases it when a process dies.
type sqliteMigrationLock struct {
	path string
	f    *os.File
}

func newSQLiteMigrationLock(dbPath string) *sqliteMigrationLock {
	return &sqliteMigrationLock{path: dbPath + ".migrate-lock"}
}

// SessionLock waits (up to five minutes, like the PostgreSQL lock) for the file lock.
func (l *sqliteMigrationLock) SessionLock(ctx context.Context, _ *sql.Conn) error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("db: migration lock: %w", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			l.f = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return fmt.Errorf("db: migration lock %s: %w", l.path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return fmt.Errorf("db: migration lock %s: another process has held it for 5 minutes", l.path)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return fmt.Errorf("db: migration lock: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SessionUnlock releases the lock (closing the file releases the flock).
func (l *sqliteMigrationLock) SessionUnlock(context.Context, *sql.Conn) error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("db: migration unlock: %w", err)
	}
	return nil
}
