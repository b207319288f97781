package config_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/config"
)

func TestParseEnvFallback(t *testing.T) {
	env := map[string]string{"GODWIT_ADDR": ":9999", "GODWIT_DB": "postgres://x", "GODWIT_STRIPE_API_BASE": "http://s"}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", ":8080", "")
	dsn := fs.String("db", "", "")
	base := fs.String("stripe-api-base", "", "")
	other := fs.String("other", "default", "")
	if err := config.Parse(fs, []string{"--db", "file.db"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *addr != ":9999" || *dsn != "file.db" || *base != "http://s" || *other != "default" {
		t.Fatalf("addr=%q db=%q base=%q other=%q", *addr, *dsn, *base, *other)
	}
}

func TestParseBadEnvNamesVariable(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("port", 1, "")
	err := config.Parse(fs, nil, func(k string) string {
		if k == "GODWIT_PORT" {
			return "abc"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "GODWIT_PORT") {
		t.Fatalf("err = %v, want one naming GODWIT_PORT", err)
	}
}

// Flags may follow positional arguments (the flag package alone stops at the
// first one), and "--" still ends the flags.
func TestParseFlagsAfterArguments(t *testing.T) {
	for _, c := range []struct {
		name       string
		args       []string
		secret     string
		verbose    bool
		positional []string
	}{
		{"flags first", []string{"--secret", "s", "-v", "admin", "ops"}, "s", true, []string{"admin", "ops"}},
		{"flags last", []string{"admin", "ops", "--secret", "s"}, "s", false, []string{"admin", "ops"}},
		{"flags between", []string{"admin", "--secret=s", "ops", "-v"}, "s", true, []string{"admin", "ops"}},
		{"double dash", []string{"admin", "--", "-v", "--secret", "s"}, "", false, []string{"admin", "-v", "--secret", "s"}},
		{"lone dash is an argument", []string{"-", "-v"}, "", true, []string{"-"}},
		{"none", nil, "", false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("token", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			secret := fs.String("secret", "", "")
			verbose := fs.Bool("v", false, "")
			if err := config.Parse(fs, c.args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			if *secret != c.secret || *verbose != c.verbose || strings.Join(fs.Args(), " ") != strings.Join(c.positional, " ") {
				t.Fatalf("secret %q verbose %v args %q; want %q %v %q", *secret, *verbose, fs.Args(), c.secret, c.verbose, c.positional)
			}
		})
	}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("secret", "", "")
	if err := config.Parse(fs, []string{"admin", "--no-such-flag"}, func(string) string { return "" }); err == nil {
		t.Fatal("an unknown flag after an argument was accepted")
	}
}

func TestParseConfirmationsOnlyFromCommandLine(t *testing.T) {
	env := map[string]string{"GODWIT_YES": "true", "GODWIT_FORCE": "true"}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	yes := fs.Bool("yes", false, "")
	force := fs.Bool("force", false, "")
	if err := config.Parse(fs, []string{"down"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *yes || *force {
		t.Fatalf("yes=%v force=%v from the environment; confirmations must be typed", *yes, *force)
	}
	if err := config.Parse(fs, []string{"down", "--yes"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if !*yes {
		t.Fatal("--yes on the command line not honoured")
	}
}
