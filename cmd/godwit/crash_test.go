package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// crashLease is the checkout lease and reservation TTL of the crash runs: work
// a kill interrupts is recoverable this long after it started.
const crashLease = 2 * time.Second

// TestCrashLoop is a shortened scripts/crashloop.sh: load, SIGKILL at a random
// moment, restart, recover, and verify with no grace — three times per engine.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop skipped in -short mode")
	}
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			dataDir := t.TempDir()
			var dbArgs []string
			if engine == db.Postgres {
				dbArgs = []string{"--db", dbtest.DSN(t, db.Postgres)}
			}
			serveArgs := append([]string{"--data-dir", dataDir,
				"--reservation-ttl", crashLease.String(), "--checkout-lease", crashLease.String(),
				"--recovery-interval", "1s", "--reaper-interval", "1s", "--hold-reaper-interval", "1s",
				"--outbox-interval", "200ms", "--log-level", "warn", "--demo"}, dbArgs...) // demo data on PostgreSQL too
			s := startServer(t, nil, serveArgs...)
			token := s.token
			if token == "" {
				out, err := exec.Command(binary, append([]string{"token", "--data-dir", dataDir}, append(dbArgs, "admin", "crash-test")...)...).Output()
				if err != nil {
					t.Fatalf("token: %v", err)
				}
				token = strings.TrimSpace(string(out))
			}
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
			const kills = 3
			for i := 1; i <= kills; i++ {
				load := exec.Command(binary, append([]string{"loadgen", "--target", s.base, "--data-dir", dataDir,
					"--duration", "60s", "--vus", "6", "--members", "12", "--no-verify", "--seed", strconv.Itoa(i)}, dbArgs...)...)
				var loadOut bytes.Buffer
				load.Stdout, load.Stderr = &loadOut, &loadOut
				if err := load.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(400+rng.IntN(1600)) * time.Millisecond)
				if err := s.cmd.Process.Kill(); err != nil { // SIGKILL
					t.Fatal(err)
				}
				<-s.done
				_ = load.Process.Kill()
				_ = load.Wait()

				s = startServer(t, nil, serveArgs...)
				time.Sleep(crashLease + 500*time.Millisecond)
				req, _ := http.NewRequest("POST", s.base+"/v1/admin/checkouts/recover", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("recover after kill %d: %d", i, res.StatusCode)
				}
				time.Sleep(1200 * time.Millisecond) // the reaper and the outbox run on 1s timers
				var out, errOut bytes.Buffer
				err = run(context.Background(), []string{"verify", "--target", s.base, "--token", token, "--grace", "0s"}, &out, &errOut, func(string) string { return "" })
				if err != nil {
					t.Fatalf("after kill %d: %v\n%s%s\nloadgen:\n%s", i, err, out.String(), errOut.String(), loadOut.String())
				}
				t.Logf("kill %d survived: %s", i, strings.TrimSpace(out.String()))
			}
			if err, _ := s.stop(t); err != nil {
				t.Fatalf("final stop: %v\n%s", err, s.stderr)
			}
		})
	}
}
