package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// envLiabilityLoad sets the load's duration in TestLiabilityAfterLoadgen
// (default 10s). The acceptance run is 60 s on each engine:
//
//	GODWIT_LIABILITY_LOAD=60s go test -run TestLiabilityAfterLoadgen -count=1 -timeout 10m ./cmd/godwit/
//
// (with GODWIT_TEST_POSTGRES set for the PostgreSQL half); docs/benchmarks.md
// records a run.
const envLiabilityLoad = "GODWIT_LIABILITY_LOAD"

// TestLiabilityAfterLoadgen runs the default load mix against `godwit serve`
// on each engine, then asks for the liability report over all time and
// requires its closing figure to be what the member accounts' postings and
// the members' balances sum to, in points and in each currency of the
// program's point values.
func TestLiabilityAfterLoadgen(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary for several seconds")
	}
	duration := "10s"
	if v := os.Getenv(envLiabilityLoad); v != "" {
		duration = v
	}
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dsn := dbtest.DSN(t, e)
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				t.Fatal(err)
			}
			keys, err := auth.NewKeys(secret, nil)
			if err != nil {
				t.Fatal(err)
			}
			admin, err := keys.Mint(auth.ScopeAdmin, "liability-test", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			dataDir := t.TempDir()
			common := []string{"--data-dir", dataDir, "--db", dsn, "--secret", hex.EncodeToString(secret)}
			s := startServer(t, nil, append([]string{"--log-level", "warn", "--demo"}, common...)...)

			out := filepath.Join(t.TempDir(), "loadgen.json")
			cmd := exec.Command(binary, append([]string{"loadgen", "--target", s.base, "--duration", duration, "--vus", "8", "--members", "40",
				"--verify-grace", "0s", "--json", out}, common...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("loadgen: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			var run struct {
				Total struct {
					Count  int64 `json:"count"`
					Errors int64 `json:"errors"`
				} `json:"total"`
			}
			if b, err := os.ReadFile(out); err != nil || json.Unmarshal(b, &run) != nil || run.Total.Count == 0 {
				t.Fatalf("loadgen report: %v %s", err, stdout.String())
			}

			req, _ := http.NewRequest("GET", s.base+"/v1/admin/reports/liability?from=2000-01-01T00:00:00Z", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var rep loyalty.LiabilityReport
			err = json.NewDecoder(res.Body).Decode(&rep)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("report: %d %v", res.StatusCode, err)
			}

			d, err := db.Open(context.Background(), dsn, db.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var postings, members int64
			if err := d.Read().QueryRow(`SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings WHERE account LIKE 'member:%'`).Scan(&postings); err != nil {
				t.Fatal(err)
			}
			if err := d.Read().QueryRow(`SELECT COALESCE(SUM(balance + held), 0) FROM loyalty_members`).Scan(&members); err != nil {
				t.Fatal(err)
			}
			closing := rep.Lines[len(rep.Lines)-1]
			if closing.Category != loyalty.LiabilityClosing || closing.Points != postings || rep.Closing != postings || postings != members || postings == 0 {
				t.Fatalf("closing %d (%+v); the member accounts' postings sum to %d, the members' balances to %d", rep.Closing, closing, postings, members)
			}
			values := program.Default().PointValues
			if len(values) == 0 || len(closing.Money) != len(values) {
				t.Fatalf("closing money %v for point values %v", closing.Money, values)
			}
			for i, v := range values {
				want, err := v.Money(postings)
				if err != nil || closing.Money[i] != want {
					t.Errorf("closing in %s: %v, the ledger's sum is worth %v (%v)", v.Currency, closing.Money[i], want, err)
				}
			}
			// The movements explain the closing figure, with nothing unknown.
			sign := map[string]int64{loyalty.LiabilityOpening: 1, loyalty.LiabilityEarned: 1, loyalty.LiabilityRedeemed: -1,
				loyalty.LiabilityTransferredOut: -1, loyalty.LiabilityExpired: -1, loyalty.LiabilityReversed: -1, loyalty.LiabilityAdjusted: 1, loyalty.LiabilityOther: 1}
			var explained, earned int64
			for _, l := range rep.Lines {
				if l.Detail != "" {
					continue
				}
				explained += sign[l.Category] * l.Points
				if l.Category == loyalty.LiabilityEarned {
					earned = l.Points
				}
				if l.Category == loyalty.LiabilityOther && l.Points != 0 {
					t.Errorf("other: %d points of transaction types the report does not know: %+v", l.Points, rep.Lines)
				}
			}
			if explained != postings || earned <= 0 {
				t.Errorf("opening + movements = %d, closing %d (earned %d)", explained, postings, earned)
			}
			t.Logf("%s: loadgen %s: %d operations (%d errors) in %s; closing %d points = %v; earned %d",
				e, duration, run.Total.Count, run.Total.Errors, time.Since(start).Round(time.Second), postings, closing.Money, earned)
		})
	}
}
