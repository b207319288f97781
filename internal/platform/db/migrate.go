package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"slices"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

// Migrations hold one directory per engine with the same numbered files, so each
// engine gets idiomatic DDL (identity columns, BYTEA) while domain SQL stays shared.
// Numbers are allocated in ranges per area: 1–9 platform, 10–19 loyalty,
// 20–29 loyalty II, 30–39 checkout, 40+ later work.
//
//go:embed migrations
var migrations embed.FS

// Migrate applies every pending migration. Concurrent migrators wait for each
// other instead of racing: on SQLite by a file lock beside the database, on
// PostgreSQL by a session advisory lock; the lock is the schema's own, so databases in other schemas of the same server (other
// deployments, every test) migrate at the same time.
func Migrate(ctx context.Context, d *DB, log *slog.Logger) error {
	p, err := newProvider(ctx, d, log)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("db: migrate %s: %w", d.engine, err)
	}
	return nil
}

// MigrationStatus lists each migration and whether it is applied.
func MigrationStatus(ctx context.Context, d *DB) ([]*goose.MigrationStatus, error) {
	p, err := newProvider(ctx, d, nil)
	if err != nil {
		return nil, err
	}
	return p.Status(ctx)
}

func newProvider(ctx context.Context, d *DB, log *slog.Logger) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, migrationDir(d.engine))
	if err != nil {
		return nil, fmt.Errorf("db: migrations: %w", err)
	}
	return newProviderFS(ctx, d, sub, log)
}

// migrationDir is where the embedded migrations of engine e are.
func migrationDir(e Engine) string {
	if e == Postgres {
		return "migrations/postgres"
	}
	return "migrations/sqlite"
}

// newProviderFS is newProvider over the migrations in fsys (tests give it
// another release's set).
func newProviderFS(ctx context.Context, d *DB, fsys fs.FS, log *slog.Logger) (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	// Areas own number ranges, so a database that has 30 (checkout) must still
	// accept a later-written 20 (loyalty II): apply missing lower versions too.
	opts := []goose.ProviderOption{goose.WithAllowOutofOrder(true)}
	if d.engine == SQLite {
		opts = append(opts, goose.WithSessionLocker(newSQLiteMigrationLock(d.path)))
	}
	if d.engine == Postgres {
		dialect = goose.DialectPostgres
		var schema string
		if err := d.write.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return nil, fmt.Errorf("db: migration lock: current schema: %w", err)
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte("godwit migrations " + schema))
		// Waiters check every second (goose's default is every 5 s) for up
		// to 5 minutes: a replica migrating a large table holds it that long.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("db: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	p, err := goose.NewProvider(dialect, d.write, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("db: migrations: %w", err)
	}
	return p, nil
}

// ErrNothingToRollBack is returned by MigrateDown on a database with no
// migration applied.
var ErrNothingToRollBack = errors.New("db: no migration is applied: nothing to roll back")

// AppliedMigration is a migration recorded in the database.
type AppliedMigration struct {
	Version int64
	// Path is the migration's file, "" when this binary does not have it
	// (a later release applied it).
	Path string
}

// LastApplied returns the most recently applied migration — the one
// MigrateDown would roll back — by the order they were applied, which is
// not the order of their numbers (areas own number ranges, and a lower
// number can be applied after a higher one).
func LastApplied(ctx context.Context, d *DB) (AppliedMigration, error) {
	applied, err := appliedVersions(ctx, d)
	if err != nil {
		return AppliedMigration{}, err
	}
	if len(applied) == 0 {
		return AppliedMigration{}, ErrNothingToRollBack
	}
	v := applied[0]
	return AppliedMigration{Version: v, Path: migrationFile(d.engine, v)}, nil
}

// UnknownMigrations lists the versions applied in the database that this
// binary does not have: a later release applied them. A binary runs against
// such a database (goose ignores versions it does not know), which is what
// lets an old replica keep running beside a new one during an upgrade.
func UnknownMigrations(ctx context.Context, d *DB) ([]int64, error) {
	applied, err := appliedVersions(ctx, d)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, v := range applied {
		if migrationFile(d.engine, v) == "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

// appliedVersions lists applied versions, most recently applied first,
// without version 0 (goose's marker for an initialised table).
func appliedVersions(ctx context.Context, d *DB) ([]int64, error) {
	dialect := database.DialectSQLite3
	if d.engine == Postgres {
		dialect = database.DialectPostgres
	}
	store, err := database.NewStore(dialect, goose.DefaultTablename)
	if err != nil {
		return nil, fmt.Errorf("db: migrations: %w", err)
	}
	list, err := store.ListMigrations(ctx, d.write)
	if err != nil {
		return nil, fmt.Errorf("db: migrations: list applied: %w", err)
	}
	var out []int64
	for _, m := range list {
		if m.IsApplied && m.Version != 0 {
			out = append(out, m.Version)
		}
	}
	return out, nil
}

// migrationFile returns the file name of migration v for engine e, or ""
// when this binary has none.
func migrationFile(e Engine, v int64) string {
	entries, err := fs.ReadDir(migrations, migrationDir(e))
	if err != nil {
		return ""
	}
	prefix := fmt.Sprintf("%05d_", v)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), prefix) {
			return en.Name()
		}
	}
	return ""
}

// hasDown reports whether migration file name of engine e has statements
// in its Down section: goose would run an empty one and record the
// rollback while leaving the schema as it was.
func hasDown(e Engine, name string) bool {
	b, err := fs.ReadFile(migrations, migrationDir(e)+"/"+name)
	if err != nil {
		return false
	}
	_, down, ok := strings.Cut(string(b), "-- +goose Down")
	if !ok {
		return false
	}
	for line := range strings.SplitSeq(down, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
			return true
		}
	}
	return false
}

// MigrateDown rolls back the most recently applied migration (one step)
// and returns it. It refuses when this binary does not have that migration
// (a later release applied it: roll back with that release) or when the
// migration has no Down statements. Under the same lock as Migrate.
func MigrateDown(ctx context.Context, d *DB, log *slog.Logger) (AppliedMigration, error) {
	last, err := LastApplied(ctx, d)
	if err != nil {
		return last, err
	}
	if last.Path == "" {
		return last, fmt.Errorf("db: the last applied migration, %05d, was applied by a later release than this binary: roll it back with that release's godwit", last.Version)
	}
	if !hasDown(d.engine, last.Path) {
		return last, fmt.Errorf("db: migration %s has no Down section: it cannot be rolled back (restore a backup instead)", last.Path)
	}
	p, err := newProvider(ctx, d, log)
	if err != nil {
		return last, err
	}
	// Roll back exactly the migration checked above, under the migration
	// lock: if another migrator rolled it back meanwhile this fails (not
	// applied) instead of rolling back the one before it.
	if _, err := p.ApplyVersion(ctx, last.Version, false); err != nil {
		return last, fmt.Errorf("db: roll back %s: %w", last.Path, err)
	}
	return last, nil
}
