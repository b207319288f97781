package auth

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// A refresh cut short because the server is stopping is no failure: it
// neither warns nor counts towards the set going stale. (Shutdown once logged
// "cannot refresh the revoked-token set" when it cancelled a poll mid-read.)
func TestRefreshStoppedIsNotAFailure(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			d := dbtest.New(t, e)
			var logs testlog.Buffer
			r, err := OpenRevocations(context.Background(), d, RevocationOptions{
				Poll: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })

			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			if err := r.refresh(stopped, true); err == nil {
				t.Fatal("refresh on a cancelled context succeeded; the test proves nothing")
			}
			r.mu.Lock()
			failures := r.failures
			r.mu.Unlock()
			if failures != 0 || strings.Contains(logs.String(), "cannot refresh") {
				t.Errorf("a stopped refresh counted %d failures and logged %q", failures, logs.String())
			}

			// A real failure still warns.
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.refresh(context.Background(), true); err == nil {
				t.Fatal("refresh on a closed database succeeded")
			}
			if !strings.Contains(logs.String(), "cannot refresh") {
				t.Errorf("a failed refresh was not logged: %q", logs.String())
			}
		})
	}
}
