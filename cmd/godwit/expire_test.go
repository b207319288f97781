package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpireCommand(t *testing.T) {
	getenv := func(string) string { return "" }
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "godwit.db")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr bool
		wantOut string
	}{
		{"empty database", []string{"expire", "--db", dbPath, "--data-dir", dir}, false, "accounts affected: 0"},
		{"as of", []string{"expire", "--db", dbPath, "--as-of", "2030-01-01T00:00:00Z", "--chunk-size", "2"}, false, "as of 2030-01-01T00:00:00Z"},
		{"bad time", []string{"expire", "--db", dbPath, "--as-of", "tomorrow"}, true, ""},
		{"bad chunk", []string{"expire", "--db", dbPath, "--chunk-size", "0"}, true, ""},
		{"missing program", []string{"expire", "--db", dbPath, "--program", filepath.Join(dir, "none.yaml")}, true, ""},
		{"arguments", []string{"expire", "--db", dbPath, "now"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut, getenv)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v\nstderr: %s", err, tc.wantErr, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("stdout lacks %q:\n%s", tc.wantOut, out.String())
			}
		})
	}
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf)
	for i := 1; i <= 3; i++ {
		p.update(i, 3)
	}
	p.finish()
	if got := buf.String(); !strings.Contains(got, "expire: 1/3 members (33%)") || !strings.Contains(got, "expire: 3/3 members (100%)") {
		t.Errorf("progress output %q", got)
	}
}
