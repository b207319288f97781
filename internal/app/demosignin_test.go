package app_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// demoSignIn posts a demo sign-in to srv (listening on 127.0.0.1) with the
// given Host header and extra headers, and returns the status and problem code.
func demoSignIn(t *testing.T, srv *httptest.Server, host, body string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+"/ui/demo/token", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if host != "" {
		req.Host = host
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Code  string `json:"code"`
		Token string `json:"token"`
	}
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode == http.StatusCreated && out.Token == "" {
		t.Fatalf("201 without a token")
	}
	return res.StatusCode, out.Code
}

// Every way a hostile tester got a token out of demo sign-in from a loopback
// connection is refused: a foreign Host (DNS rebinding), any forwarding header
// (a proxy on this machine), and admin unless --demo-admin asked for it.
func TestDemoSignInRefusesBypasses(t *testing.T) {
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Demo: true})
	srv := apitest.Server(t, a.Handler)
	t.Cleanup(srv.Close)
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	const member, admin = `{"role":"member","member_id":"ava"}`, `{"role":"admin"}`

	for _, host := range []string{"", "localhost:" + port, "LOCALHOST", "127.0.0.2:" + port, "[::1]:" + port} {
		if st, code := demoSignIn(t, srv, host, member, nil); st != http.StatusCreated {
			t.Errorf("member sign-in with Host %q = %d %s, want 201", host, st, code)
		}
	}
	refused := []struct {
		name string
		host string
		hdr  http.Header
	}{
		{"DNS rebinding", "attacker.example:" + port, nil},
		{"rebinding without a port", "attacker.example", nil},
		{"localhost look-alike", "localhost.attacker.example:" + port, nil},
		{"Forwarded", "", http.Header{"Forwarded": {"for=203.0.113.9"}}},
		{"X-Real-IP", "", http.Header{"X-Real-Ip": {"203.0.113.9"}}},
		{"empty X-Forwarded-For", "", http.Header{"X-Forwarded-For": {""}}},
		{"X-Forwarded-For", "", http.Header{"X-Forwarded-For": {"127.0.0.1"}}},
		{"X-Forwarded-Host", "", http.Header{"X-Forwarded-Host": {"localhost"}}},
		{"X-Forwarded-Proto", "", http.Header{"X-Forwarded-Proto": {"https"}}},
	}
	for _, body := range []string{member, admin} {
		for _, c := range refused {
			if st, code := demoSignIn(t, srv, c.host, body, c.hdr); st != http.StatusForbidden || code != app.CodeDemoSignInLocalOnly {
				t.Errorf("%s, %s: %d %q, want 403 %s", c.name, body, st, code, app.CodeDemoSignInLocalOnly)
			}
		}
	}
	if st, code := demoSignIn(t, srv, "", admin, nil); st != http.StatusForbidden || code != "demo_admin_disabled" {
		t.Errorf("admin sign-in without DemoAdmin = %d %q, want 403 demo_admin_disabled", st, code)
	}
	res, err := http.Get(srv.URL + "/ui/config.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var cfg map[string]any
	_ = json.NewDecoder(res.Body).Decode(&cfg)
	if cfg["demo"] != true || cfg["demo_admin"] != false {
		t.Errorf("UI config without DemoAdmin = %v, want demo true, demo_admin false", cfg)
	}
}

func TestDemoAdminSignInOnlyWhenAsked(t *testing.T) {
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Demo: true, DemoAdmin: true})
	srv := apitest.Server(t, a.Handler)
	t.Cleanup(srv.Close)
	if st, code := demoSignIn(t, srv, "", `{"role":"admin"}`, nil); st != http.StatusCreated {
		t.Errorf("admin sign-in with DemoAdmin = %d %q, want 201", st, code)
	}
	if st, _ := demoSignIn(t, srv, "attacker.example", `{"role":"admin"}`, nil); st != http.StatusForbidden {
		t.Errorf("admin sign-in with DemoAdmin and a foreign Host = %d, want 403", st)
	}
}

// A request that reached a non-loopback address of this machine is refused
// even when it comes from loopback and names localhost.
func TestDemoSignInOnlyOnLoopbackListener(t *testing.T) {
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Demo: true})
	for _, local := range []net.Addr{nil, &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8080}} {
		req := httptest.NewRequest("POST", "/ui/demo/token", strings.NewReader(`{"role":"member","member_id":"ava"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr, req.Host = "127.0.0.1:5000", "localhost:8080"
		if local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, local))
		}
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("served on %v: %d, want 403: %s", local, rec.Code, rec.Body)
		}
	}
}

func TestDemoByDefault(t *testing.T) {
	if !app.DemoByDefault("godwit-data/godwit.db") || app.DemoByDefault("postgres://u@h/db") || app.DemoByDefault((&url.URL{Scheme: "postgresql", Host: "h"}).String()) {
		t.Error("demo must be on by default on SQLite and off on PostgreSQL")
	}
}
