package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLoadgenAgainstDefaultServer runs the load generator as a newcomer would:
// against `godwit serve` with its default rate limits. Its load-test pass keeps
// it out of the limits, so nothing fails — while the same hot-member load
// without the pass is throttled, which shows the limits are really on.
func TestLoadgenAgainstDefaultServer(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary for several seconds")
	}
	dataDir := t.TempDir()
	s := startServer(t, nil, "--data-dir", dataDir, "--log-level", "warn")

	type report struct {
		Total struct {
			Count          int64            `json:"count"`
			Errors         int64            `json:"errors"`
			FailuresByCode map[string]int64 `json:"failures_by_code"`
		} `json:"total"`
	}
	loadgen := func(name string, wantOK bool, args ...string) report {
		t.Helper()
		out := filepath.Join(t.TempDir(), name+".json")
		cmd := exec.Command(binary, append([]string{"loadgen", "--target", s.base, "--data-dir", dataDir,
			"--verify-grace", "0s", "--json", out}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if wantOK && err != nil {
			t.Fatalf("%s: loadgen: %v\n%s%s", name, err, stdout.String(), stderr.String())
		}
		b, rerr := os.ReadFile(out)
		if rerr != nil {
			t.Fatalf("%s: no report (%v): %v\n%s%s", name, err, rerr, stdout.String(), stderr.String())
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: report: %v", name, err)
		}
		return r
	}

	// The default mix: guests browsing and checking out (one loopback IP, 50
	// req/s without a token) and members redeeming and transferring.
	mixed := loadgen("mixed", true, "--duration", "4s", "--vus", "16", "--members", "20")
	if mixed.Total.Count == 0 || mixed.Total.Errors != 0 {
		t.Errorf("default mix against a default server: %d operations, %d failed %v", mixed.Total.Count, mixed.Total.Errors, mixed.Total.FailuresByCode)
	}
	// Every redemption by one member (20 req/s, burst 40, for a member token).
	hot := []string{"--mix", "redeem=100", "--hot-member", "--requests", "400", "--duration", "0", "--vus", "16", "--members", "2", "--no-verify"}
	pass := loadgen("hot", true, hot...)
	if pass.Total.Count != 400 || pass.Total.Errors != 0 {
		t.Errorf("hot member with the pass: %d operations, %d failed %v", pass.Total.Count, pass.Total.Errors, pass.Total.FailuresByCode)
	}
	noPass := loadgen("hot-no-pass", false, append(hot, "--no-load-test-pass")...)
	if noPass.Total.FailuresByCode["rate_limited"] == 0 {
		t.Errorf("hot member without the pass: failures %v, want rate_limited ones (are the default limits on?)", noPass.Total.FailuresByCode)
	}
}
