// Package web is Godwit's browser UI: a storefront, a member portal, an
// operations view and a trace waterfall. It is a handful of hand-written static
// files (HTML, CSS, vanilla JavaScript) embedded in the binary; the pages talk to
// the JSON API under /v1 with fetch and bearer tokens kept in sessionStorage.
// Nothing is loaded from another host, so the UI works offline.
//
// The handler serves only the UI: "/", "/ui/...", the payment simulator's 3-D Secure
// page at "/authenticate.html" and the API reference at "/docs", drawn in the browser
// by a vendored, pinned Swagger UI (web/vendor) from the OpenAPI document at
// /v1/openapi.yaml. The process mounts the API (/v1/..., /healthz, /readyz, /metrics)
// beside it.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var staticFS embed.FS

// vendorFS holds the API reference renderer: swagger-ui-dist as published on the npm
// registry, version and sha256 sums in vendor/swagger-ui-dist (VERSION, SHA256SUMS), fetched
// by scripts/vendor-apidocs.sh. Only the two files the page loads are compiled in.
//
//go:embed vendor/swagger-ui-dist/swagger-ui-bundle.js vendor/swagger-ui-dist/swagger-ui.css
var vendorFS embed.FS

// VendoredRenderer returns the embedded renderer files (swagger-ui-bundle.js and
// swagger-ui.css), rooted at their directory, for the test that checks their sums.
func VendoredRenderer() fs.FS {
	sub, err := fs.Sub(vendorFS, "vendor/swagger-ui-dist")
	if err != nil {
		panic(err)
	}
	return sub
}

// DemoMember is a member the demo picker offers.
type DemoMember struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// DefaultDemoMembers are the members `godwit serve` seeds in demo mode.
var DefaultDemoMembers = []DemoMember{
	{ID: "ava", Name: "Ava Lindqvist"},
	{ID: "ben", Name: "Ben Okafor"},
	{ID: "chen", Name: "Chen Wei"},
}

// Config is what Handler needs.
type Config struct {
	// Demo turns on the demo member picker and the demo admin sign-in: the UI
	// may then ask POST /ui/demo/token for tokens. Never set it on a server
	// holding real members: anyone who can reach it can act as admin.
	Demo bool
	// MintMemberToken returns a member-scope bearer token for memberID. Used
	// only when Demo is true.
	MintMemberToken func(memberID string) (string, error)
	// MintAdminToken returns an admin-scope bearer token. Used only when Demo
	// is true; nil refuses demo admin sign-in with 403 demo_admin_disabled.
	MintAdminToken func() (string, error)
	// DemoMembers are offered by the picker; empty means DefaultDemoMembers.
	// Only these members can be signed in through the demo endpoint.
	DemoMembers []DemoMember
}

// Assets returns the embedded static files (index.html, the scripts, the
// stylesheet and the icon), rooted at their directory.
func Assets() fs.FS {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	return sub
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes are set explicitly so the answer never depends on the host's
// MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// loadAssets reads every file under dir of fsys, keyed by its path below dir.
func loadAssets(fsys embed.FS, dir string) (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fsys.ReadFile(p)
		if err != nil {
			return err
		}
		ext := path.Ext(p)
		ct, ok := contentTypes[ext]
		if !ok {
			ct = mime.TypeByExtension(ext)
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, dir+"/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return out, err
}

// pages are the UI's page paths; each serves the same shell and the script
// renders the page named by the path.
var pageRE = regexp.MustCompile(`^/ui/(shop|member|ops|trace/[0-9a-fA-F]{32})$`)

// Handler returns the UI handler.
func Handler(cfg Config) http.Handler {
	assets, err := loadAssets(staticFS, "static")
	if err != nil {
		panic("web: embedded assets: " + err.Error()) // the files are compiled in; this cannot fail at run time
	}
	vendored, err := loadAssets(vendorFS, "vendor/swagger-ui-dist")
	if err != nil {
		panic("web: embedded renderer: " + err.Error())
	}
	if len(cfg.DemoMembers) == 0 {
		cfg.DemoMembers = DefaultDemoMembers
	}
	h := &handler{cfg: cfg, assets: assets, vendored: vendored}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.shell)
	mux.HandleFunc("GET /ui/{$}", h.shell)
	mux.HandleFunc("GET /ui/{page...}", h.page)
	mux.HandleFunc("GET /ui/assets/{file}", h.asset)
	mux.HandleFunc("GET /ui/config.json", h.config)
	mux.HandleFunc("POST /ui/demo/token", h.demoToken)
	// The API reference is a page for people, like /ui: it is not an API route, so it is
	// neither in the route table nor in api/openapi.yaml.
	mux.HandleFunc("GET /docs", h.docs)
	// The payment simulator's 3-D Secure page, at the address the simulator puts in a
	// checkout's next_action (the stand-in for a card issuer's page).
	mux.HandleFunc("GET /authenticate.html", h.authenticate)
	mux.HandleFunc("GET /docs/vendor/{file}", h.vendor)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "not_found", "there is no page at "+r.URL.Path)
	})
	return securityHeaders(mux)
}

type handler struct {
	cfg      Config
	assets   map[string]asset // web/static
	vendored map[string]asset // the renderer, web/vendor/swagger-ui-dist
}

// securityHeaders adds a strict content security policy: the pages load only
// their own scripts and styles and talk only to this origin.
func securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, name string) {
	h.serveFrom(w, r, h.assets, name)
}

func (h *handler) serveFrom(w http.ResponseWriter, r *http.Request, assets map[string]asset, name string) {
	a, ok := assets[name]
	if !ok {
		writeProblem(w, http.StatusNotFound, "not_found", "there is no asset "+name)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	w.Header().Set("Cache-Control", "no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}

func (h *handler) shell(w http.ResponseWriter, r *http.Request) { h.serve(w, r, "index.html") }

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	if !pageRE.MatchString(r.URL.Path) {
		writeProblem(w, http.StatusNotFound, "not_found", "there is no page at "+r.URL.Path)
		return
	}
	h.shell(w, r)
}

// docs is the API reference page; docs.js draws it with the vendored renderer.
func (h *handler) docs(w http.ResponseWriter, r *http.Request) { h.serve(w, r, "docs.html") }

// authenticate is the simulated 3-D Secure page; authenticate.js answers it through
// POST /v1/simulator/authenticate and sends the customer back to the storefront.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, "authenticate.html")
}

func (h *handler) vendor(w http.ResponseWriter, r *http.Request) {
	h.serveFrom(w, r, h.vendored, r.PathValue("file"))
}

func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if path.Ext(name) == ".html" { // pages are served at their own paths
		writeProblem(w, http.StatusNotFound, "not_found", "there is no asset "+name)
		return
	}
	h.serve(w, r, name)
}

func (h *handler) config(w http.ResponseWriter, _ *http.Request) {
	body := map[string]any{"demo": h.cfg.Demo}
	if h.cfg.Demo {
		body["demo_members"] = h.cfg.DemoMembers
		body["demo_admin"] = h.cfg.MintAdminToken != nil
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

type demoTokenRequest struct {
	Role     string `json:"role"` // "member" or "admin"
	MemberID string `json:"member_id"`
}

// demoToken mints a token for a demo member or the demo admin. It exists only
// in demo mode. It insists on a JSON body so a cross-site form cannot call it
// without a CORS preflight (which this server never answers).
func (h *handler) demoToken(w http.ResponseWriter, r *http.Request) {
	if !h.cfg.Demo {
		writeProblem(w, http.StatusNotFound, "not_found", "demo sign-in is available only in demo mode")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the request as application/json")
		return
	}
	var req demoTokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid_json", "the body must be {\"role\": \"member\"|\"admin\", \"member_id\": \"...\"}")
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeProblem(w, http.StatusBadRequest, "invalid_json", "the body must hold one JSON object")
		return
	}
	var (
		tok string
		err error
	)
	switch req.Role {
	case "member":
		if !h.isDemoMember(req.MemberID) {
			writeProblem(w, http.StatusUnprocessableEntity, "not_a_demo_member", "member_id must be one of the demo members")
			return
		}
		if h.cfg.MintMemberToken == nil {
			writeProblem(w, http.StatusNotImplemented, "demo_unavailable", "this server cannot mint demo member tokens")
			return
		}
		tok, err = h.cfg.MintMemberToken(req.MemberID)
	case "admin":
		if req.MemberID != "" {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid_field", "member_id is only for role member")
			return
		}
		if h.cfg.MintAdminToken == nil {
			writeProblem(w, http.StatusForbidden, "demo_admin_disabled", "demo admin sign-in is off on this server (start it with --demo-admin to allow it); sign in with a token from 'godwit token admin <name>'")
			return
		}
		tok, err = h.cfg.MintAdminToken()
	default:
		writeProblem(w, http.StatusUnprocessableEntity, "invalid_field", "role must be member or admin")
		return
	}
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "token_mint_failed", "the demo token could not be made")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"token": tok, "role": req.Role, "member_id": req.MemberID})
}

func (h *handler) isDemoMember(id string) bool {
	for _, m := range h.cfg.DemoMembers {
		if m.ID == id && id != "" {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeProblem answers with the same problem+json shape the API uses.
func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "urn:godwit:problem:" + code, "title": http.StatusText(status),
		"status": status, "detail": detail, "code": code,
	})
}
