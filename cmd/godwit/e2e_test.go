package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
)

// binary is the godwit executable built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "godwit-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "godwit")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building godwit:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `godwit serve` process.
type server struct {
	cmd    *exec.Cmd
	base   string
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	done   chan error
	token  string // the admin token printed on first start, if any
}

// startServer runs the built binary with args and env and waits until it listens.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var prev string
		for sc.Scan() {
			line := sc.Text()
			s.stdout.WriteString(line + "\n")
			if strings.HasPrefix(prev, "Admin token") {
				s.token = line
			}
			if after, ok := strings.CutPrefix(line, "Godwit listening on "); ok {
				ready <- strings.Fields(after)[0]
			}
			prev = line
		}
		s.done <- cmd.Wait()
	}()
	select {
	case base := <-ready:
		// The tests talk to the process through a proxy that holds every
		// request and response to the OpenAPI document — except over HTTPS,
		// where the TLS tests check the transport itself, end to end.
		s.base = base
		if !strings.HasPrefix(base, "https://") {
			s.base = apitest.Proxy(t, base).URL
		}
	case err := <-s.done:
		t.Fatalf("godwit serve exited early: %v\nstderr:\n%s", err, s.stderr)
	case <-time.After(20 * time.Second):
		// Stop it first: its stderr is written until it exits.
		_ = cmd.Process.Kill()
		err := <-s.done
		s.done <- err // for the cleanup
		t.Fatalf("godwit serve did not start within 20 s (%v)\nstderr:\n%s", err, s.stderr)
	}
	return s
}

// stop sends SIGINT and returns the exit error and how long the exit took.
func (s *server) stop(t *testing.T) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		return err, time.Since(start)
	case <-time.After(15 * time.Second):
		t.Fatal("godwit serve ignored SIGINT")
	}
	return nil, 0
}

func (s *server) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestServeOnSQLiteWithOTLP(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	dataDir := t.TempDir()
	s := startServer(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=e2e",
		"OTEL_BSP_SCHEDULE_DELAY=100",
	}, "--data-dir", dataDir)
	if s.token == "" {
		t.Fatalf("first start printed no admin token:\n%s", s.stdout)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "godwit.db")); err != nil {
		t.Fatalf("no SQLite database in the data dir: %v", err)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := s.get(t, p, ""); code != 200 {
			t.Fatalf("%s = %d %s", p, code, body)
		}
	}
	if code, body := s.get(t, "/v1/admin/traces", ""); code != 401 || !strings.Contains(body, `"code":"unauthenticated"`) {
		t.Fatalf("unauthenticated admin call = %d %s", code, body)
	}
	if code, body := s.get(t, "/v1/admin/traces", s.token); code != 200 {
		t.Fatalf("admin call = %d %s", code, body)
	}
	code, metrics := s.get(t, "/metrics", "")
	if code != 200 || !strings.Contains(metrics, "http_server_request_duration_seconds") {
		t.Fatalf("/metrics = %d, lacks HTTP server metrics:\n%.2000s", code, metrics)
	}

	spans := recv.WaitForSpans(t, otlptest.HasSpan("GET /v1/admin/traces"), 10*time.Second)
	var server *otlptest.Span
	for i := range spans {
		if spans[i].Name == "GET /v1/admin/traces" && spans[i].Kind == "server" {
			server = &spans[i]
		}
	}
	if server == nil {
		t.Fatalf("no SERVER span for the request among %d spans", len(spans))
	}
	for k, want := range map[string]any{"service.name": "godwit", "deployment.environment.name": "e2e", "service.namespace": "godwit"} {
		if server.Resource[k] != want {
			t.Errorf("resource %s = %v, want %v", k, server.Resource[k], want)
		}
	}
	if v, _ := server.Resource["service.version"].(string); v == "" {
		t.Errorf("resource lacks service.version: %v", server.Resource)
	}

	err, took := s.stop(t)
	if err != nil {
		t.Fatalf("exit after SIGINT: %v\nstderr:\n%s", err, s.stderr)
	}
	if took > 5*time.Second {
		t.Fatalf("exit took %s, want under 5s", took)
	}

	// A second start reuses the secret: no new admin token, and the old one still works.
	s2 := startServer(t, nil, "--data-dir", dataDir)
	if s2.token != "" {
		t.Fatal("second start printed a new admin token")
	}
	if code, body := s2.get(t, "/v1/admin/traces", s.token); code != 200 {
		t.Fatalf("first token after restart = %d %s", code, body)
	}
	if err, _ := s2.stop(t); err != nil {
		t.Fatalf("second exit: %v", err)
	}
}

func TestServeOnPostgres(t *testing.T) {
	dsn := dbtest.DSN(t, db.Postgres)
	s := startServer(t, []string{"GODWIT_DB=" + dsn, "GODWIT_DB_MAX_CONNS=6"}, "--data-dir", t.TempDir())
	// GODWIT_DB_MAX_CONNS sized the pool: the pool's own gauge says so.
	if _, body := s.get(t, "/metrics", ""); !regexp.MustCompile(`(?m)^db_sql_connection_max_open\{db_system_name="postgresql"[^}]*\} 6$`).MatchString(body) {
		t.Errorf("/metrics lacks db_sql_connection_max_open 6 for GODWIT_DB_MAX_CONNS=6:\n%s", grepLines(body, "max_open"))
	}
	code, body := s.get(t, "/readyz", "")
	var ready map[string]string
	_ = json.Unmarshal([]byte(body), &ready)
	if code != 200 || ready["database"] != "postgres" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	// Demo mode is off by default on PostgreSQL: no sample data, no demo sign-in.
	if code, body := s.get(t, "/ui/config.json", ""); code != 200 || !strings.Contains(body, `"demo":false`) {
		t.Errorf("/ui/config.json on PostgreSQL = %d %s, want demo off", code, body)
	}
	if err, _ := s.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
	// The schema is in place: migrate reports every migration applied.
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--db", dsn}, &out, &errOut, func(string) string { return "" }); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut.String())
	}
	// Each line is "<version>  <status>  <file>"; a file name may itself
	// contain "pending" (00058_loyalty_pending.sql), so read the status column.
	statuses := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] != "" && f[0][0] >= '0' && f[0][0] <= '9' {
			statuses++
			if f[1] != "applied" {
				t.Errorf("migration %s is %s", f[0], f[1])
			}
		}
	}
	if statuses == 0 {
		t.Fatalf("migrate status:\n%s", out.String())
	}
}

func TestCommandLine(t *testing.T) {
	getenv := func(string) string { return "" }
	dataDir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		wantOut string
	}{
		{"help", []string{"help"}, false, "Commands:"},
		{"serve help", []string{"serve", "-h"}, false, "GODWIT_ADDR"},
		{"token help", []string{"help", "token"}, false, "--ttl"},
		{"version", []string{"version"}, false, "godwit "},
		{"unknown command", []string{"bogus"}, true, ""},
		{"no command", nil, true, ""},
		{"token bad scope", []string{"token", "--data-dir", dataDir, "root", "x"}, true, ""},
		{"token missing subject", []string{"token", "--data-dir", dataDir, "admin"}, true, ""},
		{"token member", []string{"token", "--data-dir", dataDir, "member", "m-1"}, false, "eyJ"},
		{"bad flag", []string{"serve", "--no-such-flag"}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut, getenv)
			if tc.args != nil && (tc.args[0] == "help" || (len(tc.args) > 1 && tc.args[1] == "-h")) {
				err = ignoreHelp(err)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v\nstderr: %s", err, tc.wantErr, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("stdout lacks %q:\n%s", tc.wantOut, out.String())
			}
		})
	}
}

func ignoreHelp(err error) error {
	if err != nil && err.Error() == "flag: help requested" {
		return nil
	}
	return err
}

func (s *server) post(t *testing.T, path, token string, body any, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// TestServeWithStripeMock completes a guest checkout through the Stripe
// provider against stripe-mock (.ci/run starts it and sets GODWIT_TEST_STRIPE_MOCK).
func TestServeWithStripeMock(t *testing.T) {
	base := os.Getenv("GODWIT_TEST_STRIPE_MOCK")
	if base == "" {
		t.Skip("GODWIT_TEST_STRIPE_MOCK not set; start stripe-mock with scripts/stripe-mock.sh to run this test")
	}
	s := startServer(t, []string{"GODWIT_STRIPE_SECRET_KEY=sk_test_godwit"},
		"--data-dir", t.TempDir(), "--payment", "stripe", "--stripe-api-base", base)
	code, order := s.post(t, "/v1/checkout", "", guestCheckoutBody(t, s, 2), map[string]string{"Idempotency-Key": "stripe-e2e-1"})
	if code != 201 || order["status"] != "confirmed" {
		t.Fatalf("checkout through stripe-mock: %d %v\nstderr:\n%s", code, order, s.stderr)
	}
	if err, _ := s.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestVerifyCommand runs `godwit verify` on a database and through a server's
// admin endpoint, and makes it fail by breaking the ledger.
func TestVerifyCommand(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, nil, "--data-dir", dataDir)
	getenv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"verify", "--target", s.base, "--token", s.token}, &out, &errOut, getenv); err != nil {
		t.Fatalf("verify --target: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "no violations") {
		t.Fatalf("verify --target said:\n%s", out.String())
	}
	if err, _ := s.stop(t); err != nil {
		t.Fatal(err)
	}

	// Break the books: a posting that does not balance.
	d, err := db.Open(context.Background(), filepath.Join(dataDir, "godwit.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE loyalty_postings SET amount = amount + 1 WHERE id = (SELECT MIN(id) FROM loyalty_postings)`)
		return err
	})
	_ = d.Close()
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(context.Background(), []string{"verify", "--data-dir", dataDir}, &out, &errOut, getenv)
	if err == nil || !strings.Contains(out.String(), "violation") {
		t.Fatalf("verify on a broken ledger: err=%v\n%s", err, out.String())
	}
}

// grepLines returns the lines of s that contain sub, for a failure message.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
