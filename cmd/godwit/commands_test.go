package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// emptyDir fails the test if dir holds anything.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was created in the working directory", e.Name())
	}
}

// Flags after the positional arguments work for every command, as they do
// before them: `godwit token admin ops --secret X` mints with X, and writes no
// secret file.
func TestTokenFlagsAfterArguments(t *testing.T) {
	t.Chdir(t.TempDir())
	secret := bytes.Repeat([]byte{0xab}, 32)
	keys, err := auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"token", "admin", "ops", "--secret", hex.EncodeToString(secret)},
		{"token", "admin", "--ttl", "1h", "ops", "--secret=" + hex.EncodeToString(secret)},
		{"token", "--secret", hex.EncodeToString(secret), "admin", "ops"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut, func(string) string { return "" }); err != nil {
			t.Fatalf("godwit %v: %v\n%s", args, err, errOut.String())
		}
		p, err := keys.Verify(strings.TrimSpace(out.String()))
		if err != nil || p.Subject != "ops" || p.Scope != auth.ScopeAdmin {
			t.Errorf("godwit %v minted %v (%v), want an admin token for ops signed with --secret", args, p, err)
		}
	}
	emptyDir(t, ".")
}

// `godwit verify --db …` reads the database and writes nothing else: no
// godwit-data/secret in the working directory.
func TestVerifyWritesNoSecret(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dsn := dbtest.DSN(t, e) // SQLite: a file in a directory of its own
			t.Chdir(t.TempDir())
			var out, errOut bytes.Buffer
			if err := run(context.Background(), []string{"verify", "--db", dsn}, &out, &errOut, func(string) string { return "" }); err != nil {
				t.Fatalf("verify: %v\n%s%s", err, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), "no violations") {
				t.Fatalf("verify said:\n%s", out.String())
			}
			emptyDir(t, ".")
		})
	}
}
