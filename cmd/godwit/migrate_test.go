package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// runCmd runs a godwit command in-process and returns its output and error.
func runCmd(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e, func(string) string { return "" })
	return o.String(), e.String(), err
}

// TestMigrateStatusAndDown drives `godwit migrate status` and `down` on
// each engine: down says what it would roll back and changes nothing
// without --yes, rolls back exactly one migration with it, and up applies
// it again.
func TestMigrateStatusAndDown(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dsn := dbtest.DSN(t, e)
			if _, stderr, err := runCmd("migrate", "--db", dsn); err != nil {
				t.Fatalf("migrate: %v\n%s", err, stderr)
			}
			status := func() string {
				t.Helper()
				out, stderr, err := runCmd("migrate", "status", "--db", dsn)
				if err != nil {
					t.Fatalf("migrate status: %v\n%s", err, stderr)
				}
				return out
			}
			out := status()
			applied := regexp.MustCompile(`(?m)^(\d{5})\s+applied\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(\S+)$`).FindAllStringSubmatch(out, -1)
			if len(applied) < 10 || !strings.Contains(out, " 0 pending") {
				t.Fatalf("status after migrate:\n%s", out)
			}
			lastFile := applied[len(applied)-1][2] // on a fresh database, applied in version order

			out, _, err := runCmd("migrate", "down", "--db", dsn)
			if !errors.Is(err, errNotConfirmed) || !strings.Contains(out, lastFile) || !strings.Contains(out, "--yes") && !strings.Contains(err.Error(), "--yes") {
				t.Fatalf("down without --yes: %v\n%s", err, out)
			}
			if s := status(); !strings.Contains(s, " 0 pending") {
				t.Fatalf("down without --yes changed the database:\n%s", s)
			}
			out, stderr, err := runCmd("migrate", "down", "--yes", "--db", dsn)
			if err != nil || !strings.Contains(out, "rolled back "+lastFile) {
				t.Fatalf("down --yes: %v\n%s%s", err, out, stderr)
			}
			s := status()
			if !regexp.MustCompile(`(?m)^`+lastFile[:5]+`\s+pending\s+-\s+`+regexp.QuoteMeta(lastFile)+`$`).MatchString(s) || !strings.Contains(s, " 1 pending") {
				t.Fatalf("status after down:\n%s", s)
			}
			if _, stderr, err := runCmd("migrate", "up", "--db", dsn); err != nil {
				t.Fatalf("migrate up: %v\n%s", err, stderr)
			}
			if s := status(); !strings.Contains(s, " 0 pending") {
				t.Fatalf("status after up again:\n%s", s)
			}
		})
	}
}

func TestMigrateRefusals(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope", "godwit.db")
	for _, args := range [][]string{{"migrate", "status", "--db", missing}, {"migrate", "down", "--yes", "--db", missing}} {
		if _, _, err := runCmd(args...); err == nil || !strings.Contains(err.Error(), "no SQLite database") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status or down created the missing database: %v", err)
	}
	for _, args := range [][]string{{"migrate", "sideways"}, {"migrate", "status", "down"}, {"migrate", "status", "--yes"}} {
		if _, _, err := runCmd(args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
