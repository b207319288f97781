package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
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

// TestBatchCommandsExportTheirTrace runs `godwit expire` and `godwit verify --db`
// with OTEL_* pointing at an OTLP receiver, as cron would: each run's spans must
// have reached the receiver by the time the command returns.
func TestBatchCommandsExportTheirTrace(t *testing.T) {
	rcv := otlptest.NewReceiver(t)
	getenv := rcv.Env(nil)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "godwit.db")
	run1 := func(args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut, getenv); err != nil {
			t.Fatalf("godwit %v: %v\nstderr: %s", args, err, errOut.String())
		}
	}

	run1("expire", "--db", dbPath, "--data-dir", dir, "--as-of", "2030-01-01T00:00:00Z")
	batch := rcv.SpansNamed("loyalty.expiration_batch")
	if len(batch) != 1 {
		t.Fatalf("got %d loyalty.expiration_batch spans when expire returned, want 1 (spans: %d)", len(batch), len(rcv.Spans()))
	}
	if got := batch[0].Resource["service.name"]; got != "godwit-expire" {
		t.Errorf("expire span service.name = %v, want godwit-expire", got)
	}
	if batch[0].ParentSpanID != "" || batch[0].Attributes["loyalty.expiry_policy"] == nil {
		t.Errorf("expire span: parent %q, attributes %v; want a root span with loyalty.expiry_policy", batch[0].ParentSpanID, batch[0].Attributes)
	}

	run1("verify", "--db", dbPath, "--data-dir", dir)
	verify := rcv.SpansNamed("godwit.verify")
	if len(verify) != 1 {
		t.Fatalf("got %d godwit.verify spans when verify returned, want 1", len(verify))
	}
	if got := verify[0].Resource["service.name"]; got != "godwit-verify" {
		t.Errorf("verify span service.name = %v, want godwit-verify", got)
	}
	inTrace := 0
	for _, s := range rcv.Spans() {
		if s.TraceID == verify[0].TraceID && s.ParentSpanID != "" {
			inTrace++
		}
	}
	if inTrace == 0 {
		t.Errorf("verify's trace has only its root span; want its database work under it")
	}
}

// `godwit expire --dry-run` reports what a run would expire and changes
// nothing; the run that follows expires exactly that.
func TestExpireDryRunWritesNothing(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			dsn := dbtest.DSN(t, e)
			// The demo members, with their points.
			a, err := app.New(ctx, app.Config{DSN: dsn, DataDir: dir, Secret: bytes.Repeat([]byte{1}, 32), Demo: true,
				Observe: app.TelemetryConfig{LogOutput: io.Discard, Getenv: func(string) string { return "" }}})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			state := func() string {
				t.Helper()
				d, err := db.Open(ctx, dsn, db.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				var tx, lots, balances, updated int64
				if err := d.Read().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM loyalty_transactions), (SELECT COALESCE(SUM(remaining), 0) FROM loyalty_lots),
					(SELECT COALESCE(SUM(balance), 0) FROM loyalty_members), (SELECT COALESCE(SUM(updated_at), 0) FROM loyalty_members)`).Scan(&tx, &lots, &balances, &updated); err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("transactions %d, lots %d, balances %d, updated %d", tx, lots, balances, updated)
			}
			expire := func(args ...string) string {
				t.Helper()
				var out, errOut bytes.Buffer
				args = append([]string{"expire", "--db", dsn, "--data-dir", dir, "--as-of", "2100-01-01T00:00:00Z"}, args...)
				if err := run(ctx, args, &out, &errOut, func(string) string { return "" }); err != nil {
					t.Fatalf("godwit %v: %v\n%s", args, err, errOut.String())
				}
				return out.String()
			}
			before := state()
			preview := expire("--dry-run")
			if after := state(); after != before {
				t.Fatalf("--dry-run changed the database:\nbefore %s\nafter  %s", before, after)
			}
			m := regexp.MustCompile(`accounts that would lose: (\d+)\n  points that would expire: (\d+)`).FindStringSubmatch(preview)
			if !strings.HasPrefix(preview, "Dry run, nothing written: expiry (inactivity policy") || m == nil || m[1] == "0" || m[2] == "0" {
				t.Fatalf("--dry-run said:\n%s", preview)
			}
			real := expire()
			if !strings.Contains(real, "accounts affected: "+m[1]+"\n") || !strings.Contains(real, "points expired:    "+m[2]+"\n") {
				t.Errorf("the run expired other figures than its dry run (%s accounts, %s points):\n%s", m[1], m[2], real)
			}
			if state() == before {
				t.Error("the run after the dry run changed nothing")
			}
		})
	}
}
