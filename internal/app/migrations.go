package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// MigrationReport is what `godwit migrate status` shows: every migration
// this binary has, applied or pending, and the versions a later release
// applied that this binary does not know.
type MigrationReport struct {
	Migrations []MigrationStatus
	Unknown    []int64
}

// MigrationStatus is one migration, its state and when it was applied.
type MigrationStatus struct {
	Version   int64
	State     string // applied or pending
	Path      string
	AppliedAt time.Time // zero when pending
}

// MigrationStatuses reports the migrations of the database at dsn without changing it.
func MigrationStatuses(ctx context.Context, dsn string) (MigrationReport, error) {
	var rep MigrationReport
	d, err := openExisting(ctx, dsn)
	if err != nil {
		return rep, err
	}
	defer d.Close()
	st, err := db.MigrationStatus(ctx, d)
	if err != nil {
		return rep, err
	}
	for _, s := range st {
		rep.Migrations = append(rep.Migrations, MigrationStatus{Version: s.Source.Version, State: string(s.State), Path: s.Source.Path, AppliedAt: s.AppliedAt})
	}
	rep.Unknown, err = db.UnknownMigrations(ctx, d)
	return rep, err
}

// AppliedMigration names a migration recorded in the database; Path is ""
// when a later release applied it.
type AppliedMigration = db.AppliedMigration

// ErrNothingToRollBack is returned by MigrateDown when no migration is applied.
var ErrNothingToRollBack = db.ErrNothingToRollBack

// LastMigration returns the migration MigrateDown would roll back.
func LastMigration(ctx context.Context, dsn string) (AppliedMigration, error) {
	d, err := openExisting(ctx, dsn)
	if err != nil {
		return AppliedMigration{}, err
	}
	defer d.Close()
	return db.LastApplied(ctx, d)
}

// MigrateDown rolls back the most recently applied migration of the
// database at dsn, logging to logOut, and returns it.
func MigrateDown(ctx context.Context, dsn string, logOut io.Writer) (AppliedMigration, error) {
	d, err := openExisting(ctx, dsn)
	if err != nil {
		return AppliedMigration{}, err
	}
	defer d.Close()
	return db.MigrateDown(ctx, d, slog.New(slog.NewTextHandler(logOut, nil)))
}

// openExisting opens the database at dsn, refusing a SQLite file that does
// not exist: reading or rolling back a mistyped path must not create an
// empty database there.
func openExisting(ctx context.Context, dsn string) (*db.DB, error) {
	if !db.IsPostgresDSN(dsn) {
		path := strings.TrimPrefix(dsn, "sqlite:")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no SQLite database at %s (name it with --db or --data-dir): %w", path, err)
		}
	}
	return db.Open(ctx, dsn, db.Options{})
}
