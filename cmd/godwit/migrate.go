package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/godwit-dev/godwit/internal/app"
)

const migrateHelp = `migrate [up|status|down] [flags]

  up (the default)  applies pending migrations and prints each one's state. Every
                    'godwit serve' does this on start; replicas starting together
                    take turns (a lock), so running it first is optional.
  status            prints each migration, applied (with when) or pending, and any
                    version a later release applied; changes nothing.
  down              rolls back the most recently applied migration, one step. It
                    undoes a schema change and loses the data that change held.
                    Without --yes it only says what it would roll back. Stop every
                    replica running the release that added the migration first: a
                    replica of that release applies it again when it starts.

See docs/operations.md, "Upgrades".`

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "migrate", migrateHelp)
	var common commonFlags
	common.register(fs)
	yes := fs.Bool("yes", false, "down: roll the migration back (without it, down only says what it would do)")
	flags, positional := splitArgs(fs, args)
	if err := parseFlags(e, fs, flags); err != nil {
		return err
	}
	positional = append(positional, fs.Args()...)
	action := "up"
	if len(positional) > 0 {
		action = positional[0]
	}
	if len(positional) > 1 || (action != "up" && action != "status" && action != "down") {
		fmt.Fprintf(e.stderr, "godwit migrate: want up, status or down, not %q\n", positional)
		return errUsage
	}
	if *yes && action != "down" {
		fmt.Fprintln(e.stderr, "godwit migrate: --yes is for down")
		return errUsage
	}
	dsn := common.DatabaseDSN()
	switch action {
	case "status":
		return migrateStatus(ctx, e, dsn)
	case "down":
		return migrateDown(ctx, e, dsn, *yes)
	}
	states, err := app.Migrate(ctx, dsn, e.stderr)
	if err != nil {
		return err
	}
	for _, s := range states {
		fmt.Fprintf(e.stdout, "%05d  %-8s  %s\n", s.Version, s.State, s.Path)
	}
	return nil
}

func migrateStatus(ctx context.Context, e env, dsn string) error {
	rep, err := app.MigrationStatuses(ctx, dsn)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tSTATE\tAPPLIED AT (UTC)\tFILE")
	pending := 0
	for _, m := range rep.Migrations {
		at := "-"
		if m.State == "applied" {
			at = m.AppliedAt.UTC().Format("2006-01-02 15:04:05")
		} else {
			pending++
		}
		fmt.Fprintf(w, "%05d\t%s\t%s\t%s\n", m.Version, m.State, at, m.Path)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d applied, %d pending\n", len(rep.Migrations)-pending, pending)
	for _, v := range rep.Unknown {
		fmt.Fprintf(e.stdout, "%05d  applied by a later release (this binary does not have it)\n", v)
	}
	return nil
}

// errNotConfirmed makes `migrate down` without --yes exit non-zero after
// saying what it would roll back.
var errNotConfirmed = errors.New("nothing rolled back: pass --yes to roll it back")

func migrateDown(ctx context.Context, e env, dsn string, yes bool) error {
	last, err := app.LastMigration(ctx, dsn)
	if err != nil {
		return err
	}
	if !yes {
		name := last.Path
		if name == "" {
			name = fmt.Sprintf("%05d (applied by a later release; this binary cannot roll it back)", last.Version)
		}
		fmt.Fprintf(e.stdout, "migrate down would roll back %s.\n"+
			"It undoes that migration's schema change: data held only by what it added is lost.\n"+
			"Stop (or downgrade) every replica running the release that added it first, or one of them\n"+
			"applies it again when it starts. Take a backup first (godwit backup, or pg_dump).\n", name)
		return errNotConfirmed
	}
	done, err := app.MigrateDown(ctx, dsn, e.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rolled back %s\n", done.Path)
	return nil
}
