package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "migrate", "migrate [flags]\n\nApplies pending migrations (safe to run while replicas start) and prints each one's state.")
	var common commonFlags
	common.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	d, err := db.Open(ctx, common.databaseDSN(), db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := db.Migrate(ctx, d, slog.New(slog.NewTextHandler(e.stderr, nil))); err != nil {
		return err
	}
	st, err := db.MigrationStatus(ctx, d)
	if err != nil {
		return err
	}
	for _, s := range st {
		fmt.Fprintf(e.stdout, "%05d  %-8s  %s\n", s.Source.Version, s.State, s.Source.Path)
	}
	return nil
}
