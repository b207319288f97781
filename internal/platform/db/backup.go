package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrBackupPostgres is returned by BackupSQLite for a PostgreSQL DSN: a
// PostgreSQL database is backed up with PostgreSQL's own tools, which know
// its WAL and can restore to a point in time.
var ErrBackupPostgres = errors.New("db: backup copies an embedded SQLite database; back PostgreSQL up with pg_dump " +
	"(a logical copy) or a base backup with WAL archiving (pg_basebackup, point-in-time recovery): " +
	`see docs/operations.md, "Backups and restore"`)

// ErrBackupExists is returned by BackupSQLite when the destination exists
// and overwriting was not asked for.
var ErrBackupExists = errors.New("db: backup destination exists")

// BackupResult describes a finished backup.
type BackupResult struct {
	Source, Path string
	Bytes        int64
	// SchemaVersion is the highest migration applied in the copy.
	SchemaVersion int64
	Took          time.Duration
}

// BackupSQLite writes a consistent copy of the SQLite database at src to
// dst while other processes keep reading and writing it. The copy is made
// by VACUUM INTO inside one read transaction, so it is the database as of
// one commit: in WAL mode that reader blocks no writer, and no writer's
// half-finished work is in it. The copy is written beside dst, checked
// (PRAGMA quick_check) and synced, then moved into place, so dst is either
// absent or a complete, checked copy — never a partial file. An existing
// dst is replaced only when overwrite is set. The copy's mode is 0600: it
// holds members' names and emails.
func BackupSQLite(ctx context.Context, src, dst string, overwrite bool) (BackupResult, error) {
	started := time.Now()
	res := BackupResult{Source: src, Path: dst}
	if IsPostgresDSN(src) {
		return res, ErrBackupPostgres
	}
	src = strings.TrimPrefix(src, "sqlite:")
	res.Source = src
	if dst == "" {
		return res, errors.New("db: backup: no destination path")
	}
	fi, err := os.Stat(src)
	if err != nil {
		return res, fmt.Errorf("db: backup: no SQLite database at %s (name it with --db or --data-dir): %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return res, fmt.Errorf("db: backup: %s is not a file", src)
	}
	if same, err := sameFile(src, dst); err != nil {
		return res, err
	} else if same {
		return res, fmt.Errorf("db: backup: the destination %s is the database itself", dst)
	}
	if _, err := os.Stat(dst); err == nil && !overwrite {
		return res, fmt.Errorf("%w: %s (pass --force to replace it)", ErrBackupExists, dst)
	}
	dir := filepath.Dir(dst)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return res, fmt.Errorf("db: backup: destination directory %s does not exist", dir)
	}
	tmp, err := tempName(dst)
	if err != nil {
		return res, err
	}
	defer os.Remove(tmp) // a no-op once it has been moved into place

	if err := vacuumInto(ctx, src, tmp); err != nil {
		return res, err
	}
	res.SchemaVersion, err = checkCopy(ctx, tmp)
	if err != nil {
		return res, err
	}
	if err := syncFile(tmp); err != nil {
		return res, err
	}
	if err := place(tmp, dst, overwrite); err != nil {
		return res, err
	}
	if st, err := os.Stat(dst); err == nil {
		res.Bytes = st.Size()
	}
	res.Took = time.Since(started)
	return res, nil
}

// vacuumInto copies src into the new file tmp. The source is opened
// read-write but never written: mode=rw only keeps a mistyped path from
// creating an empty database, and a read-write connection can use the WAL
// index a running server keeps (a read-only one cannot when the -shm file
// is missing).
func vacuumInto(ctx context.Context, src, tmp string) error {
	q := url.Values{"mode": {"rw"}}
	q.Add("_pragma", "busy_timeout(10000)")
	conn, err := sql.Open("sqlite", "file:"+src+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("db: backup: open %s: %w", src, err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`).Scan(&n); err != nil {
		return fmt.Errorf("db: backup: read %s: %w", src, err)
	}
	if n == 0 {
		return fmt.Errorf("db: backup: %s is not a Godwit database (it has no migration table)", src)
	}
	if _, err := conn.ExecContext(ctx, `VACUUM INTO $1`, tmp); err != nil {
		return fmt.Errorf("db: backup: copy %s: %w", src, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("db: backup: %w", err)
	}
	return nil
}

// checkCopy runs SQLite's quick check over the copy and returns its schema
// version, so a backup that reports success can be opened.
func checkCopy(ctx context.Context, path string) (int64, error) {
	conn, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, fmt.Errorf("db: backup: open the copy: %w", err)
	}
	defer conn.Close()
	var verdict string
	if err := conn.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&verdict); err != nil {
		return 0, fmt.Errorf("db: backup: check the copy: %w", err)
	}
	if verdict != "ok" {
		return 0, fmt.Errorf("db: backup: the copy failed SQLite's quick check: %s", verdict)
	}
	var v sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		return 0, fmt.Errorf("db: backup: read the copy's schema version: %w", err)
	}
	return v.Int64, nil
}

// place moves the finished copy to dst. Without overwrite it links instead
// of renaming, so a file created at dst meanwhile is never replaced.
func place(tmp, dst string, overwrite bool) error {
	if overwrite {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("db: backup: %w", err)
		}
		return syncDir(filepath.Dir(dst))
	}
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s (pass --force to replace it)", ErrBackupExists, dst)
		}
		return fmt.Errorf("db: backup: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

func tempName(dst string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("db: backup: %w", err)
	}
	return dst + ".tmp-" + hex.EncodeToString(b), nil
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, fmt.Errorf("db: backup: %w", err)
	}
	sb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("db: backup: %w", err)
	}
	return os.SameFile(sa, sb), nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("db: backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("db: backup: sync the copy: %w", err)
	}
	return f.Close()
}

// syncDir makes the new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("db: backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("db: backup: sync %s: %w", dir, err)
	}
	return nil
}
