package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/web"
)

func get(t *testing.T, h http.Handler, method, path, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAssetsAndPagesHaveContentTypes(t *testing.T) {
	h := web.Handler(web.Config{})
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/ui/", "text/html; charset=utf-8"},
		{"/ui/shop", "text/html; charset=utf-8"},
		{"/ui/member", "text/html; charset=utf-8"},
		{"/ui/ops", "text/html; charset=utf-8"},
		{"/ui/trace/0123456789abcdef0123456789abcdef", "text/html; charset=utf-8"},
		{"/ui/assets/app.css", "text/css; charset=utf-8"},
		{"/ui/assets/core.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/shop.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/member.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/ops.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/liability.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/webhooks.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/trace.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/main.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/icon.svg", "image/svg+xml"},
		{"/ui/config.json", "application/json"},
		{"/docs", "text/html; charset=utf-8"},
		{"/authenticate.html", "text/html; charset=utf-8"},
		{"/authenticate.html?client_secret=pi_1_secret_2&checkout_id=chk_1", "text/html; charset=utf-8"},
		{"/ui/assets/authenticate.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/docs.js", "text/javascript; charset=utf-8"},
		{"/ui/assets/docs.css", "text/css; charset=utf-8"},
		{"/docs/vendor/swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
		{"/docs/vendor/swagger-ui.css", "text/css; charset=utf-8"},
	} {
		rec := get(t, h, "GET", c.path, "", "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != c.ctype {
			t.Errorf("GET %s = %d %q, want 200 %q", c.path, rec.Code, rec.Header().Get("Content-Type"), c.ctype)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s lacks the security headers: %v", c.path, rec.Header())
		}
	}
	// Every asset the shell names is served.
	shell := get(t, h, "GET", "/", "", "").Body.String()
	for _, m := range regexp.MustCompile(`(?:src|href)="(/ui/assets/[^"]+)"`).FindAllStringSubmatch(shell, -1) {
		if rec := get(t, h, "GET", m[1], "", ""); rec.Code != 200 {
			t.Errorf("the shell references %s, which answers %d", m[1], rec.Code)
		}
	}
	for _, p := range []string{"/ui/nope", "/ui/assets/nope.js", "/ui/assets/index.html", "/ui/assets/docs.html", "/ui/assets/authenticate.html", "/authenticate", "/ui/authenticate.html", "/ui/trace/xyz", "/favicon.ico", "/v2/anything",
		"/docs/", "/docs/vendor/LICENSE", "/docs/vendor/SHA256SUMS", "/docs/vendor/nope.js", "/docs/vendor/docs.js"} {
		if rec := get(t, h, "GET", p, "", ""); rec.Code != 404 {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
	// Conditional requests get 304.
	first := get(t, h, "GET", "/ui/assets/app.css", "", "")
	req := httptest.NewRequest("GET", "/ui/assets/app.css", nil)
	req.Header.Set("If-None-Match", first.Header().Get("ETag"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET = %d, want 304", rec.Code)
	}
}

func TestDemoTokenRefusedOutsideDemo(t *testing.T) {
	minted := false
	mint := func(string) (string, error) { minted = true; return "tok", nil }
	admin := func() (string, error) { minted = true; return "tok", nil }
	h := web.Handler(web.Config{Demo: false, MintMemberToken: mint, MintAdminToken: admin})
	for _, body := range []string{`{"role":"member","member_id":"ava"}`, `{"role":"admin"}`} {
		rec := get(t, h, "POST", "/ui/demo/token", "application/json", body)
		if rec.Code != http.StatusNotFound {
			t.Errorf("demo token with Demo false = %d %s, want 404", rec.Code, rec.Body)
		}
	}
	if minted {
		t.Error("a token was minted outside demo mode")
	}
	var cfg map[string]any
	_ = json.Unmarshal(get(t, h, "GET", "/ui/config.json", "", "").Body.Bytes(), &cfg)
	if cfg["demo"] != false || cfg["demo_members"] != nil {
		t.Errorf("config outside demo mode = %v", cfg)
	}
}

func TestDemoToken(t *testing.T) {
	var gotMember string
	h := web.Handler(web.Config{
		Demo:            true,
		MintMemberToken: func(id string) (string, error) { gotMember = id; return "member-token-" + id, nil },
		MintAdminToken:  func() (string, error) { return "admin-token", nil },
	})
	rec := get(t, h, "POST", "/ui/demo/token", "application/json", `{"role":"member","member_id":"ben"}`)
	var out map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != 201 || out["token"] != "member-token-ben" || gotMember != "ben" {
		t.Fatalf("member demo token = %d %s", rec.Code, rec.Body)
	}
	rec = get(t, h, "POST", "/ui/demo/token", "application/json", `{"role":"admin"}`)
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != 201 || out["token"] != "admin-token" {
		t.Fatalf("admin demo token = %d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct {
		ctype, body string
		code        int
	}{
		{"text/plain", `{"role":"admin"}`, http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", `role=admin`, http.StatusUnsupportedMediaType},
		{"application/json", `{"role":"member","member_id":"mallory"}`, http.StatusUnprocessableEntity},
		{"application/json", `{"role":"member"}`, http.StatusUnprocessableEntity},
		{"application/json", `{"role":"service"}`, http.StatusUnprocessableEntity},
		{"application/json", `{"role":"admin","extra":1}`, http.StatusBadRequest},
		{"application/json", `{"role":"admin"}{}`, http.StatusBadRequest},
		{"application/json", `{"role":"admin","member_id":"ava"}`, http.StatusUnprocessableEntity},
		{"application/json", strings.Repeat(" ", 2000) + `{"role":"admin"}`, http.StatusBadRequest},
	} {
		rec := get(t, h, "POST", "/ui/demo/token", c.ctype, c.body)
		if rec.Code != c.code || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST %.40q as %s = %d %s, want %d problem+json", c.body, c.ctype, rec.Code, rec.Body, c.code)
		}
	}
	if rec := get(t, h, "GET", "/ui/demo/token", "", ""); rec.Code != 404 {
		t.Errorf("GET /ui/demo/token = %d, want 404", rec.Code)
	}
	var cfg struct {
		Demo        bool             `json:"demo"`
		DemoMembers []web.DemoMember `json:"demo_members"`
		DemoAdmin   bool             `json:"demo_admin"`
	}
	_ = json.Unmarshal(get(t, h, "GET", "/ui/config.json", "", "").Body.Bytes(), &cfg)
	if !cfg.Demo || len(cfg.DemoMembers) != 3 || !cfg.DemoAdmin {
		t.Errorf("demo config = %+v", cfg)
	}
}

// TestNoExternalURLs keeps the UI offline-capable: no asset may point at
// another host (CDNs, web fonts, analytics). The SVG namespace is a name, not
// a fetch, and is the one exception.
func TestNoExternalURLs(t *testing.T) {
	h := web.Handler(web.Config{})
	allowed := map[string]bool{"http://www.w3.org/2000/svg": true}
	url := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'<>)]*`)
	checked := 0
	err := fs.WalkDir(web.Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := web.Assets().Open(p)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(f)
		f.Close()
		checked++
		for _, m := range url.FindAllString(string(b), -1) {
			if !allowed[m] {
				t.Errorf("%s refers to another host: %s", p, m)
			}
		}
		for _, bad := range []string{"@import", "fonts.googleapis", "cdn."} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
	if err != nil || checked < 8 {
		t.Fatalf("walked %d assets: %v", checked, err)
	}
	_ = h
}

// Without MintAdminToken (serve without --demo-admin) demo admin sign-in is
// refused with a problem that says how to sign in instead, and the UI config
// tells the page not to offer it.
func TestDemoAdminDisabled(t *testing.T) {
	h := web.Handler(web.Config{
		Demo:            true,
		MintMemberToken: func(id string) (string, error) { return "member-token-" + id, nil },
	})
	rec := get(t, h, "POST", "/ui/demo/token", "application/json", `{"role":"admin"}`)
	var p map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != http.StatusForbidden || p["code"] != "demo_admin_disabled" || !strings.Contains(fmt.Sprint(p["detail"]), "--demo-admin") {
		t.Errorf("admin demo token without MintAdminToken = %d %s, want 403 demo_admin_disabled naming --demo-admin", rec.Code, rec.Body)
	}
	if rec := get(t, h, "POST", "/ui/demo/token", "application/json", `{"role":"member","member_id":"ava"}`); rec.Code != http.StatusCreated {
		t.Errorf("member demo token = %d %s", rec.Code, rec.Body)
	}
	var cfg map[string]any
	_ = json.Unmarshal(get(t, h, "GET", "/ui/config.json", "", "").Body.Bytes(), &cfg)
	if cfg["demo"] != true || cfg["demo_admin"] != false {
		t.Errorf("config = %v, want demo true and demo_admin false", cfg)
	}
}
