package main

import (
	"io"
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
