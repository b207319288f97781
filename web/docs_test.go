package web_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/web"
)

// vendorDir is the vendored renderer's directory (tests run in web/).
const vendorDir = "vendor/swagger-ui-dist"

// readSums parses a sha256sum-style file into name → sum.
func readSums(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: not a sha256sum line: %q", file, sc.Text())
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestVendoredRendererIsPinned fails when a renderer file compiled into the binary is not
// the one recorded in SHA256SUMS and web/vendor/README.md (package, version, sums): a
// changed bundle must come from scripts/vendor-apidocs.sh, with its sums updated in the
// same commit.
func TestVendoredRendererIsPinned(t *testing.T) {
	sums := readSums(t, filepath.Join(vendorDir, "SHA256SUMS"))
	version, err := os.ReadFile(filepath.Join(vendorDir, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("vendor", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(version)); !strings.Contains(string(readme), "`swagger-ui-dist`") || !strings.Contains(string(readme), "version **"+v+"**") {
		t.Errorf("web/vendor/README.md does not name swagger-ui-dist version %s", v)
	}
	embedded := 0
	err = fs.WalkDir(web.VendoredRenderer(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		embedded++
		b, err := fs.ReadFile(web.VendoredRenderer(), name)
		if err != nil {
			return err
		}
		got := sha256Hex(b)
		if want, ok := sums[name]; !ok {
			t.Errorf("embedded %s has no line in SHA256SUMS", name)
		} else if got != want {
			t.Errorf("embedded %s has sha256 %s, SHA256SUMS says %s: re-vendor with scripts/vendor-apidocs.sh", name, got, want)
		}
		if !strings.Contains(string(readme), got) {
			t.Errorf("web/vendor/README.md does not record %s's sha256 %s", name, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if embedded != 2 {
		t.Errorf("%d renderer files are embedded, want 2 (swagger-ui-bundle.js, swagger-ui.css)", embedded)
	}
	// The licence travels with the code it covers.
	for _, name := range []string{"LICENSE", "NOTICE"} {
		b, err := os.ReadFile(filepath.Join(vendorDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Hex(b); got != sums[name] {
			t.Errorf("%s has sha256 %s, SHA256SUMS says %q", name, got, sums[name])
		}
	}
}

// TestDocsPage checks the API reference page: the UI's security headers unchanged, no
// inline script or style, every file it names served, the document it draws is the
// server's, and every UI page links to it.
func TestDocsPage(t *testing.T) {
	h := web.Handler(web.Config{})
	page := get(t, h, "GET", "/docs", "", "")
	if page.Code != 200 {
		t.Fatalf("GET /docs = %d", page.Code)
	}
	shell := get(t, h, "GET", "/ui/shop", "", "")
	if got, want := page.Header().Get("Content-Security-Policy"), shell.Header().Get("Content-Security-Policy"); got != want || want == "" {
		t.Errorf("/docs has CSP %q, the UI %q: the reference must run under the same policy", got, want)
	}
	for _, forbidden := range []string{"unsafe-inline", "unsafe-eval", "blob:", "http:", "https:"} {
		if strings.Contains(page.Header().Get("Content-Security-Policy"), forbidden) {
			t.Errorf("/docs CSP allows %s: %s", forbidden, page.Header().Get("Content-Security-Policy"))
		}
	}
	body := page.Body.String()
	for _, tag := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(tag, ` src="/`) {
			t.Errorf("/docs has a script that is not a same-origin file: %s", tag)
		}
	}
	if n := len(regexp.MustCompile(`(?i)<script\b[^>]*>\s*\S[^<]*</script>`).FindAllString(body, -1)); n != 0 {
		t.Errorf("/docs has %d inline scripts", n)
	}
	if regexp.MustCompile(`(?i)<style\b|\sstyle="|\son[a-z]+="`).MatchString(body) {
		t.Error("/docs has an inline style or event handler")
	}
	refs := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(body, -1)
	seen := map[string]bool{}
	for _, m := range refs {
		seen[m[1]] = true
		if strings.HasPrefix(m[1], "/v1/") || m[1] == "/" {
			continue // the API's and the UI's own
		}
		rec := get(t, h, "GET", m[1], "", "")
		if rec.Code != 200 {
			t.Errorf("/docs references %s, which answers %d", m[1], rec.Code)
		}
		if rec.Header().Get("ETag") == "" || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("%s is served without the assets' caching headers: %v", m[1], rec.Header())
		}
	}
	for _, want := range []string{"/docs/vendor/swagger-ui-bundle.js", "/docs/vendor/swagger-ui.css", "/ui/assets/docs.js"} {
		if !seen[want] {
			t.Errorf("/docs does not load %s", want)
		}
	}
	if !strings.Contains(body, `data-spec="/v1/openapi.yaml"`) {
		t.Error("/docs does not draw /v1/openapi.yaml, the document the server serves")
	}
	// A renderer file answers 304 to its ETag, as the UI's assets do.
	first := get(t, h, "GET", "/docs/vendor/swagger-ui-bundle.js", "", "")
	req := httptest.NewRequest("GET", "/docs/vendor/swagger-ui-bundle.js", nil)
	req.Header.Set("If-None-Match", first.Header().Get("ETag"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET of the renderer = %d, want 304", rec.Code)
	}
	// Every UI page (they share one shell) links to the reference from its footer.
	foot := regexp.MustCompile(`(?s)<footer[^>]*>.*</footer>`).FindString(shell.Body.String())
	if !strings.Contains(foot, `<a href="/docs">API reference</a>`) {
		t.Errorf("the UI's footer does not link to /docs: %s", foot)
	}
}

// TestAuthenticatePage checks the simulated 3-D Secure page the simulator's next_action
// points at: served under the UI's own policy, no inline script, style or handler, every
// file it names served, and its script answering through the simulator's route.
func TestAuthenticatePage(t *testing.T) {
	h := web.Handler(web.Config{})
	page := get(t, h, "GET", "/authenticate.html?client_secret=pi_1_secret_2&checkout_id=chk_1", "", "")
	if page.Code != 200 {
		t.Fatalf("GET /authenticate.html = %d", page.Code)
	}
	shell := get(t, h, "GET", "/ui/shop", "", "")
	if got, want := page.Header().Get("Content-Security-Policy"), shell.Header().Get("Content-Security-Policy"); got != want || want == "" {
		t.Errorf("/authenticate.html has CSP %q, the UI %q", got, want)
	}
	if page.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("/authenticate.html may be framed: %v", page.Header())
	}
	body := page.Body.String()
	for _, tag := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(tag, ` src="/ui/assets/`) {
			t.Errorf("/authenticate.html has a script that is not one of the UI's files: %s", tag)
		}
	}
	if n := len(regexp.MustCompile(`(?i)<script\b[^>]*>\s*\S[^<]*</script>`).FindAllString(body, -1)); n != 0 {
		t.Errorf("/authenticate.html has %d inline scripts", n)
	}
	if regexp.MustCompile(`(?i)<style\b|\sstyle="|\son[a-z]+="`).MatchString(body) {
		t.Error("/authenticate.html has an inline style or event handler")
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(body, -1) {
		seen[m[1]] = true
		if rec := get(t, h, "GET", m[1], "", ""); rec.Code != 200 {
			t.Errorf("/authenticate.html references %s, which answers %d", m[1], rec.Code)
		}
	}
	for _, want := range []string{"/ui/assets/core.js", "/ui/assets/authenticate.js", "/ui/assets/app.css"} {
		if !seen[want] {
			t.Errorf("/authenticate.html does not load %s", want)
		}
	}
	js := get(t, h, "GET", "/ui/assets/authenticate.js", "", "").Body.String()
	for _, want := range []string{`"/v1/simulator/authenticate"`, "client_secret", "approve"} {
		if !strings.Contains(js, want) {
			t.Errorf("authenticate.js does not mention %s", want)
		}
	}
}
