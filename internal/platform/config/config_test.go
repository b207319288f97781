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
