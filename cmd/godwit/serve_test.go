package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// serveConfig parses serve's flags as runServe does, with env as the environment.
func serveConfig(t *testing.T, env map[string]string, args ...string) (serveFlags, error) {
	t.Helper()
	e := testEnv(env)
	fs := newFlagSet(e, "serve", "serve [flags]")
	var (
		common commonFlags
		f      serveFlags
	)
	common.register(fs)
	common.registerPool(fs)
	f.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return f, err
	}
	cfg, err := f.config(e, common)
	f.cfg = cfg
	return f, err
}

func testEnv(vars map[string]string) env {
	return env{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return vars[k] }}
}

// Demo mode is on by default where a newcomer starts (SQLite) and off on
// PostgreSQL, where real members live; --demo/GODWIT_DEMO say otherwise, and
// demo admin sign-in is only ever on when asked for.
func TestServeDemoDefaults(t *testing.T) {
	const pg = "postgres://u@127.0.0.1:1/db"
	for _, c := range []struct {
		name            string
		env             map[string]string
		args            []string
		demo, demoAdmin bool
	}{
		{"SQLite default", nil, nil, true, false},
		{"PostgreSQL default", nil, []string{"--db", pg}, false, false},
		{"PostgreSQL from the environment", map[string]string{"GODWIT_DB": pg}, nil, false, false},
		{"PostgreSQL with --demo", nil, []string{"--db", pg, "--demo"}, true, false},
		{"PostgreSQL with GODWIT_DEMO", map[string]string{"GODWIT_DEMO": "true"}, []string{"--db", pg}, true, false},
		{"SQLite with --demo=false", nil, []string{"--demo=false"}, false, false},
		{"--demo-admin", nil, []string{"--demo-admin"}, true, true},
		{"GODWIT_DEMO_ADMIN", map[string]string{"GODWIT_DEMO_ADMIN": "true"}, nil, true, true},
	} {
		f, err := serveConfig(t, c.env, append([]string{"--data-dir", t.TempDir()}, c.args...)...)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if f.cfg.Demo != c.demo || f.cfg.DemoAdmin != c.demoAdmin {
			t.Errorf("%s: Demo %v DemoAdmin %v, want %v %v", c.name, f.cfg.Demo, f.cfg.DemoAdmin, c.demo, c.demoAdmin)
		}
	}
	if _, err := serveConfig(t, nil, "--db", pg, "--demo-admin"); err == nil {
		t.Error("--demo-admin without demo mode was accepted")
	}
}

func TestMetricsExposure(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	all := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	public := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 8080}
	for _, c := range []struct {
		api          net.Addr
		metrics, tok string
		wantWarning  bool
	}{
		{loop, "", "", false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "", "", false},
		{all, "", "", true},
		{public, "", "", true},
		{all, "127.0.0.1:9464", "", false},
		{public, "", "0123456789abcdef", false},
	} {
		if got := metricsExposure(c.api, c.metrics, c.tok); (got != "") != c.wantWarning {
			t.Errorf("API on %v, --metrics-addr %q, token %v: warning %q", c.api, c.metrics, c.tok != "", got)
		}
	}
}

// --metrics-addr moves /metrics to a listener of its own; an API listening
// beyond loopback with /metrics open logs a warning at start.
func TestServeMetricsListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	_ = ln.Close()
	s := startServer(t, []string{"GODWIT_METRICS_TOKEN=0123456789abcdef-metrics"}, "--data-dir", t.TempDir(), "--metrics-addr", metricsAddr)
	if code, _ := s.get(t, "/metrics", ""); code != http.StatusNotFound {
		t.Errorf("/metrics on the API listener = %d, want 404", code)
	}
	for tok, want := range map[string]int{"": 401, "0123456789abcdef-metrics": 200} {
		req, _ := http.NewRequest("GET", "http://"+metricsAddr+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("--metrics-addr /metrics with token %q = %d, want %d", tok, res.StatusCode, want)
		}
	}
	if err, _ := s.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if strings.Contains(s.stderr.String(), "/metrics is open") {
		t.Errorf("warned although /metrics has its own listener:\n%s", s.stderr)
	}

	open := startServer(t, nil, "--data-dir", t.TempDir(), "--addr", "0.0.0.0:0")
	if code, _ := open.get(t, "/metrics", ""); code != 200 {
		t.Errorf("default /metrics = %d", code)
	}
	if err, _ := open.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(open.stderr.String(), "/metrics is open") {
		t.Errorf("no warning for /metrics open on all interfaces:\n%s", open.stderr)
	}
}

// --db-max-conns (GODWIT_DB_MAX_CONNS) sizes the pool, at least 2, and on
// PostgreSQL leaves half of it for reads: --write-batch-writers at most half.
func TestServeDBMaxConns(t *testing.T) {
	const pg = "postgres://u@127.0.0.1:1/db"
	for _, c := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    int
		wantErr string
	}{
		{"default", nil, nil, 16, ""},
		{"flag", nil, []string{"--db-max-conns", "6"}, 6, ""},
		{"environment", map[string]string{"GODWIT_DB_MAX_CONNS": "7"}, nil, 7, ""},
		{"flag over environment", map[string]string{"GODWIT_DB_MAX_CONNS": "7"}, []string{"--db-max-conns=9"}, 9, ""},
		{"one", nil, []string{"--db-max-conns", "1"}, 0, "at least 2"},
		{"zero", nil, []string{"--db-max-conns", "0"}, 0, "at least 2"},
		{"SQLite pool of two", nil, []string{"--db-max-conns", "2"}, 2, ""},
		{"PostgreSQL pool of two, two writers", nil, []string{"--db", pg, "--db-max-conns", "2"}, 0, "--write-batch-writers 2 needs --db-max-conns of at least 4"},
		{"PostgreSQL pool of two, one writer", nil, []string{"--db", pg, "--db-max-conns", "2", "--write-batch-writers", "1"}, 2, ""},
		{"PostgreSQL eight writers", map[string]string{"GODWIT_WRITE_BATCH_WRITERS": "8"}, []string{"--db", pg}, 16, ""},
		{"PostgreSQL nine writers", nil, []string{"--db", pg, "--write-batch-writers", "9"}, 0, "needs --db-max-conns of at least 18"},
	} {
		f, err := serveConfig(t, c.env, append([]string{"--data-dir", t.TempDir()}, c.args...)...)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want one saying %q", c.name, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case f.cfg.DBMaxConns != c.want:
			t.Errorf("%s: DBMaxConns %d, want %d", c.name, f.cfg.DBMaxConns, c.want)
		}
	}
}
