package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

func newTestApp(t *testing.T) *app.App {
	t.Helper()
	return newTestAppOn(t, dbtest.DSN(t, db.SQLite))
}

func newTestAppOn(t *testing.T, dsn string) *app.App {
	t.Helper()
	return newTestAppWith(t, app.Config{DSN: dsn})
}

// newTestAppWith builds an app from cfg, filling in telemetry, secret and data dir.
func newTestAppWith(t *testing.T, cfg app.Config) *app.App {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg.Secret = []byte("0123456789abcdef0123456789abcdef")
	cfg.Telemetry = tel
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestOpenAPIIsServed(t *testing.T) {
	a := newTestApp(t)
	srv := apitest.Server(t, a.Handler)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/v1/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(string(b), "openapi: 3.1") {
		t.Fatalf("GET /v1/openapi.yaml = %d %.80s", res.StatusCode, b)
	}
}

func TestDemoSignInIsLocalOnly(t *testing.T) {
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Demo: true})
	for _, tc := range []struct {
		remote, xff string
		want        int
	}{
		{"127.0.0.1:5000", "", http.StatusCreated},
		{"[::1]:5000", "", http.StatusCreated},
		{"203.0.113.9:5000", "", http.StatusForbidden},
		{"127.0.0.1:5000", "203.0.113.9", http.StatusForbidden}, // behind a proxy: not local
	} {
		req := httptest.NewRequest("POST", "/ui/demo/token", strings.NewReader(`{"role":"member","member_id":"ava"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = tc.remote
		// A browser on this machine talking to a loopback listener.
		req.Host = "localhost:8080"
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}))
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("from %s (xff %q): %d, want %d: %s", tc.remote, tc.xff, rec.Code, tc.want, rec.Body)
		}
	}
}
