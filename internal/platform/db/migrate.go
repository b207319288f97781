package db

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations hold one directory per engine with the same numbered files, so each
// engine gets idiomatic DDL (identity columns, BYTEA) while domain SQL stays shared.
// Numbers are allocated in ranges per area: 1–9 platform, 10–19 loyalty,
// 20–29 loyalty II, 30–39 checkout, 40+ later work.
//
//go:embed migrations
var migrations embed.FS

// Migrate applies every pending migration. On PostgreSQL a session advisory lock
// makes concurrent replicas wait for each other instead of racing; the lock is
// the schema's own, so databases in other schemas of the same server (other
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
	dir := "migrations/sqlite"
	dialect := goose.DialectSQLite3
	// Areas own number ranges, so a database that has 30 (checkout) must still
	// accept a later-written 20 (loyalty II): apply missing lower versions too.
	opts := []goose.ProviderOption{goose.WithAllowOutofOrder(true)}
	if d.engine == Postgres {
		dir, dialect = "migrations/postgres", goose.DialectPostgres
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
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("db: migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, d.write, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("db: migrations: %w", err)
	}
	return p, nil
}
