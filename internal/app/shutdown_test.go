package app_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// syncBuffer is a bytes.Buffer safe for the exporters' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Close flushes telemetry before it closes the database: the last metric
// collection at shutdown runs the gauges that read the database, and with the
// pool already closed each logged a WARN "database is closed".
func TestCloseFlushesTelemetryBeforeTheDatabase(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			var logs syncBuffer
			env := map[string]string{"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
			a, err := app.New(context.Background(), app.Config{
				DSN: dbtest.DSN(t, e), DataDir: t.TempDir(), Secret: []byte(rigSecret),
				Observe: app.TelemetryConfig{LogFormat: "text", LogOutput: &logs, Getenv: func(k string) string { return env[k] }},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "database is closed") {
					t.Errorf("shutdown logged: %s", line)
				}
			}
			if !strings.Contains(out, "loyalty.points_outstanding") {
				t.Fatalf("the final collection did not export loyalty.points_outstanding; the test proves nothing:\n%.2000s", out)
			}
		})
	}
}

// Config.DBMaxConns (serve's --db-max-conns) sizes the process's pool.
func TestDBMaxConnsSizesThePool(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: e, cfg: app.Config{DBMaxConns: 5}})
			if got := r.a.DB.Read().Stats().MaxOpenConnections; got != 5 {
				t.Fatalf("pool of %d connections, want 5", got)
			}
		})
	}
}
