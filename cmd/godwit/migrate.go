package main

import (
	"context"
	"fmt"

	"github.com/godwit-dev/godwit/internal/app"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "migrate", "migrate [flags]\n\nApplies pending migrations (safe to run while replicas start) and prints each one's state.")
	var common commonFlags
	common.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	states, err := app.Migrate(ctx, common.DatabaseDSN(), e.stderr)
	if err != nil {
		return err
	}
	for _, s := range states {
		fmt.Fprintf(e.stdout, "%05d  %-8s  %s\n", s.Version, s.State, s.Path)
	}
	return nil
}
