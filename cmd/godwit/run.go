package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/godwit-dev/godwit/internal/platform/config"
)

// errUsage marks a command-line mistake already explained on stderr (exit 2).
var errUsage = errors.New("usage")

// env bundles what a command needs from its surroundings, so tests can run
// commands in-process with their own streams and environment.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the HTTP server and background jobs", runServe},
		"migrate": {"apply database migrations; status lists them, down rolls the last back", runMigrate},
		"expire":  {"expire loyalty points now, with a progress bar and a summary", runExpire},
		"token":   {"mint a bearer token: godwit token admin|service|member <subject>", runToken},
		"version": {"print the version", runVersion},
		"backup":  {"copy the SQLite database while serving (consistent, online)", runBackup},
		"verify":  {"check every ledger and shop invariant (database or running server)", runVerify},
		"loadgen": {"generate realistic load against a server and report latency", runLoadgen},
		"trace":   {"print a trace as a text waterfall (from a server or Jaeger)", runTrace},
		"events":  {"events tail: print business events from NATS JetStream as they arrive", runEvents},
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	e := env{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
			if c, ok := commands()[rest[0]]; ok {
				return c.run(ctx, e, []string{"-h"})
			}
		}
		usage(stdout)
		return nil
	}
	c, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "godwit: unknown command %q\n\n", name)
		usage(stderr)
		return errUsage
	}
	return c.run(ctx, e, rest)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Godwit %s: commerce checkout and travel loyalty on one exact, traced ledger.\n\nUsage: godwit <command> [flags]\n\nCommands:\n", version())
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'godwit <command> -h' for a command's flags. Every flag can also be set")
	fmt.Fprintln(w, "from the environment as GODWIT_<FLAG>, e.g. GODWIT_DB for --db.")
}

// newFlagSet returns a flag set whose usage text lists flags with their environment names.
func newFlagSet(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: godwit %s\n\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s%s\n      %s [%s]\n", f.Name, def, f.Usage, config.EnvName(f.Name))
		})
	}
	return fs
}

// parseFlags parses args with environment fallbacks; -h prints usage to stdout.
func parseFlags(e env, fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := config.Parse(fs, args, e.getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if strings.HasPrefix(err.Error(), "environment ") {
			return err
		}
		return errUsage
	}
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

func runVersion(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "version", "version")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "godwit", version())
	return nil
}
