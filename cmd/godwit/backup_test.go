package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// posting is one row of the points ledger, as compared between a source and a copy.
type posting struct {
	ID          int64
	Transaction string
	Account     string
	Amount      int64
}

// TestBackupUnderLoadRestores runs `godwit backup` against a serving
// process while the load generator checks out, earns, redeems and transfers
// (eight concurrent clients). Every copy must be the source as of one
// commit: its ledger is exactly the source's ledger up to the copy's last
// posting, taken between the backup's start and end, and each member's
// balance in the copy is what the source's postings gave at that point.
// Then each copy is restored as a godwit operator would (the database file
// and the secret into a fresh data directory) and served: verify is clean
// (a checkout caught mid-saga is finished by recovery), the old admin token
// still works, and after the load the balances equal the source's.
func TestBackupUnderLoadRestores(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary under load for several seconds")
	}
	dataDir := t.TempDir()
	// Recovery every second settles the checkouts the interrupted load leaves in flight.
	s := startServer(t, nil, "--data-dir", dataDir, "--log-level", "warn", "--recovery-interval", "1s")
	if s.token == "" {
		t.Fatal("no admin token printed on first start")
	}
	src := openReadOnly(t, filepath.Join(dataDir, "godwit.db"))

	// Long enough for the backups on a busy machine; interrupted after them.
	report := filepath.Join(t.TempDir(), "load.json")
	load := exec.Command(binary, "loadgen", "--target", s.base, "--data-dir", dataDir, "--duration", "2m",
		"--vus", "8", "--members", "20", "--no-verify", "--json", report)
	var loadOut bytes.Buffer
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()
	t.Cleanup(func() {
		if load.ProcessState == nil {
			_ = load.Process.Kill()
			<-loadDone
		}
	})

	type taken struct {
		path   string
		lo, hi int64 // the source's last posting before the backup began and after it ended
	}
	var copies []taken
	backups := t.TempDir()
	waitForPostings(t, src, 200, loadDone, &loadOut)
	for i := range 3 {
		lo := maxPosting(t, src)
		dst := filepath.Join(backups, fmt.Sprintf("during-%d.db", i))
		out := runBinary(t, "backup", "--data-dir", dataDir, dst)
		if !strings.Contains(out, "schema version") || !strings.Contains(out, filepath.Join(dataDir, "secret")) {
			t.Errorf("backup output lacks the schema version or the secret's path:\n%s", out)
		}
		hi := maxPosting(t, src)
		copies = append(copies, taken{dst, lo, hi})
		waitForPostings(t, src, hi+100, loadDone, &loadOut)
	}
	select {
	case err := <-loadDone:
		t.Fatalf("the load ended before the backups did (%v):\n%s", err, loadOut.String())
	default:
	}
	if err := load.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-loadDone // interrupted: in-flight operations count as failed, so its exit status says nothing
	var rep struct {
		Total struct {
			Count     int64 `json:"count"`
			Status5xx int64 `json:"status_5xx"`
		} `json:"total"`
	}
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("no load report (%v):\n%s", err, loadOut.String())
	}
	if rep.Total.Count == 0 || rep.Total.Status5xx != 0 {
		t.Errorf("load during the backups: %d operations, %d answered 5xx\n%s", rep.Total.Count, rep.Total.Status5xx, loadOut.String())
	}
	if copies[len(copies)-1].lo == copies[0].lo {
		t.Fatal("no writes between the backups: the load did not run")
	}

	srcLedger := readPostings(t, src)
	for _, c := range copies {
		cp := openReadOnly(t, c.path)
		got := readPostings(t, cp)
		last := int64(0)
		if len(got) > 0 {
			last = got[len(got)-1].ID
		}
		if last < c.lo || last > c.hi {
			t.Errorf("%s: last posting %d, want one taken while the backup ran (%d..%d)", c.path, last, c.lo, c.hi)
		}
		var want []posting
		for _, p := range srcLedger {
			if p.ID <= last {
				want = append(want, p)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d postings, the source had %d up to posting %d", c.path, len(got), len(want), last)
		} else {
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s: posting %+v, the source has %+v", c.path, got[i], want[i])
					break
				}
			}
		}
		// Each member's balance in the copy is the source's at that commit.
		balances := memberBalances(t, cp)
		atCopy := map[string]int64{}
		for _, p := range want {
			if id, ok := strings.CutPrefix(p.Account, "member:"); ok {
				atCopy[id] += p.Amount
			}
		}
		for id, b := range balances {
			if b != atCopy[id] {
				t.Errorf("%s: member %s has %d (balance + held), the source's postings gave %d at that commit", c.path, id, b, atCopy[id])
			}
		}
		if len(balances) == 0 {
			t.Errorf("%s: no members", c.path)
		}
		if out := runBinary(t, "verify", "--db", c.path); !strings.Contains(out, "verify: ok") {
			t.Errorf("verify %s:\n%s", c.path, out)
		}
	}

	// The quiet end: once nothing is in flight, a copy equals the source,
	// balance for balance.
	if out := runBinary(t, "verify", "--target", s.base, "--token", s.token, "--wait", "60s"); !strings.Contains(out, "verify: ok") || strings.Contains(out, "in flight") {
		t.Fatalf("the source after the load:\n%s", out)
	}
	final := filepath.Join(backups, "final.db")
	var want map[string]int64
	for attempt := 0; ; attempt++ {
		before := memberBalances(t, src)
		runBinary(t, "backup", "--force", "--data-dir", dataDir, final)
		if want = memberBalances(t, src); maps.Equal(before, want) {
			break
		}
		if attempt == 5 {
			t.Fatal("the source kept changing after the load ended")
		}
		time.Sleep(time.Second)
	}
	if err, _ := s.stop(t); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.stderr)
	}
	if out, err := runBinaryErr("backup", "--data-dir", dataDir, final); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("a second backup to the same file: %v\n%s", err, out)
	}
	// Flags may follow the destination.
	runBinary(t, "backup", final, "--data-dir", dataDir, "--force")

	for _, c := range []taken{copies[0], {path: final}} {
		restored := restoreInto(t, c.path, filepath.Join(dataDir, "secret"))
		r := startServer(t, nil, "--data-dir", restored, "--log-level", "warn", "--recovery-interval", "500ms")
		if r.token != "" {
			t.Errorf("%s: the restored server generated a new secret: the secret was not restored with the database", c.path)
		}
		out := runBinary(t, "verify", "--target", r.base, "--token", s.token, "--wait", "30s")
		if !strings.Contains(out, "verify: ok") || strings.Contains(out, "in flight") {
			t.Errorf("%s restored: verify with the old admin token:\n%s", c.path, out)
		}
		if c.path == final {
			for id, b := range want {
				code, body := r.get(t, "/v1/members/"+id, s.token)
				var m struct {
					Balance int64 `json:"balance"`
					Held    int64 `json:"held"`
				}
				if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
					t.Fatalf("restored GET member %s = %d %s", id, code, body)
				}
				if m.Balance+m.Held != b {
					t.Errorf("restored member %s: %d (balance %d + held %d), the source had %d", id, m.Balance+m.Held, m.Balance, m.Held, b)
				}
			}
		}
		if err, _ := r.stop(t); err != nil {
			t.Fatalf("stop restored: %v\n%s", err, r.stderr)
		}
	}
}

// restoreInto follows docs/operations.md's restore for SQLite: a fresh data
// directory holding the copy as godwit.db and the secret file beside it.
func restoreInto(t *testing.T, backup, secret string) string {
	t.Helper()
	dir := t.TempDir()
	for from, to := range map[string]string{backup: "godwit.db", secret: "secret"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runBinary(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runBinaryErr(args...)
	if err != nil {
		t.Fatalf("godwit %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runBinaryErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func maxPosting(t *testing.T, d *sql.DB) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := d.QueryRow(`SELECT MAX(id) FROM loyalty_postings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n.Int64
}

// waitForPostings waits until the ledger's last posting reaches n.
func waitForPostings(t *testing.T, d *sql.DB, n int64, loadDone chan error, loadOut *bytes.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); maxPosting(t, d) < n; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-loadDone:
			loadDone <- err
			t.Fatalf("the load ended (%v) before the ledger reached posting %d:\n%s", err, n, loadOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger did not reach posting %d", n)
		}
	}
}

func readPostings(t *testing.T, d *sql.DB) []posting {
	t.Helper()
	rows, err := d.Query(`SELECT id, transaction_id, account, amount FROM loyalty_postings ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []posting
	for rows.Next() {
		var p posting
		if err := rows.Scan(&p.ID, &p.Transaction, &p.Account, &p.Amount); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return out
}

// memberBalances is each member's balance plus held points (what the
// member account's postings sum to).
func memberBalances(t *testing.T, d *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := d.Query(`SELECT id, balance + held FROM loyalty_members`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var b int64
		if err := rows.Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
