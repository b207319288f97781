package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventsink"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestLoadgenEventsDeliveredOnce is the short, automatic form of issue 20's
// loadgen run (docs/benchmarks.md has the 60 s one, by hand with
// scripts/eventsink): on both engines, `godwit serve` with a webhook
// subscription to every event type (and --nats when a NATS server answers
// on 127.0.0.1:4222) under 10 s of an earn-heavy loadgen mix, which ends
// with verify clean. Then every event written after the subscription is
// delivered by webhook (signature verified) and is on the NATS stream, and
// none arrives twice by id.
func TestLoadgenEventsDeliveredOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary for 10 s per engine")
	}
	withNATS := natsAnswers()
	if !withNATS {
		t.Logf("no NATS server answers on %s: checking webhook delivery only", natsAddr)
	}
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dataDir := t.TempDir()
			dsn := filepath.Join(dataDir, "godwit.db")
			var dbArgs []string
			if engine == db.Postgres {
				dsn = dbtest.DSN(t, db.Postgres)
				dbArgs = []string{"--db", dsn}
			}
			args := append([]string{"--data-dir", dataDir, "--log-level", "warn", "--demo",
				"--webhook-allow-private", "--webhook-interval", "200ms"}, dbArgs...)
			if withNATS {
				args = append(args, "--nats", "nats://"+natsAddr)
			}
			s := startServer(t, nil, args...)
			admin := mintToken(t, dataDir, nil, append(dbArgs, "admin", "ops")...)

			sink := eventsink.New()
			recv := httptest.NewServer(sink)
			t.Cleanup(recv.Close)
			code, sub := s.post(t, "/v1/admin/webhook-subscriptions", admin, map[string]any{"url": recv.URL, "event_types": events.Types}, nil)
			if code != http.StatusCreated {
				t.Fatalf("subscribe: %d %v", code, sub)
			}
			if err := sink.SetSecret(sub["secret"].(string)); err != nil {
				t.Fatal(err)
			}
			since := time.Now()
			if withNATS {
				go func() {
					if err := sink.TailNATS(ctx, "nats://"+natsAddr, since.Add(-time.Second)); err != nil && ctx.Err() == nil {
						t.Errorf("reading the NATS stream: %v", err)
					}
				}()
			}

			cmd := exec.Command(binary, "loadgen", "--target", s.base, "--data-dir", dataDir, "--duration", "10s",
				"--vus", "8", "--members", "40", "--mix", "earn=70,redeem=10,transfer=10,checkout=10", "--verify-grace", "0s")
			cmd.Env = os.Environ()
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("loadgen (verify included): %v\n%s", err, out.String())
			}

			d, err := db.Open(ctx, dsn, db.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			ids, err := eventsink.EventIDs(ctx, d, since)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) < 100 {
				t.Fatalf("only %d events written during the load run\n%s", len(ids), out.String())
			}
			wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
			defer wcancel()
			rep := sink.Wait(wctx, ids, withNATS)
			t.Logf("%s: %v", engine, rep)
			if !rep.OK() {
				t.Errorf("after the load run: %v", rep)
			}
			// A little later, still none twice (a late duplicate would show here).
			time.Sleep(time.Second)
			if rep := sink.Check(ids, withNATS); !rep.OK() {
				t.Errorf("a second after: %v", rep)
			}
		})
	}
}
