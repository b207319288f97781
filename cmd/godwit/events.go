package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
)

// runEvents runs `godwit events tail`: the events arriving on the NATS
// stream, one CloudEvents JSON line each.
func runEvents(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "events", "events tail [--nats URL] [--type TYPE,…] [--max N] [--since RFC3339]\n\n"+
		"Prints the business events arriving on the NATS JetStream stream GODWIT_EVENTS\n"+
		"(published by `godwit serve --nats`), one CloudEvents JSON line each, until\n"+
		"interrupted. Each message is consumed under an events.consume span that continues\n"+
		"the trace of the request that caused the event (OTEL_* variables configure export).")
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	types := fs.String("type", "", "comma-separated event types to print (default: all; docs/events.md lists them)")
	max := fs.Int("max", 0, "stop after this many events (0: run until interrupted)")
	since := fs.String("since", "", "start from this time on the stream (RFC 3339) instead of from now")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "tail" {
		fmt.Fprintln(e.stderr, "godwit events: the subcommand is tail")
		fs.Usage()
		return errUsage
	}
	cfg := app.TailConfig{NATS: *url, Max: *max, Observe: commandTelemetry(e)}
	if *types != "" {
		for _, t := range strings.Split(*types, ",") {
			cfg.Types = append(cfg.Types, strings.TrimSpace(t))
		}
	}
	if *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		cfg.Since = t
	}
	if *max < 0 {
		return fmt.Errorf("--max must not be negative, not %d", *max)
	}
	return app.TailEvents(ctx, cfg, e.stdout)
}
