// Package apitest holds HTTP traffic to Godwit's OpenAPI document in tests.
//
// Handler wraps a server's handler (Proxy fronts a server in another
// process) so that every request and every response of a test is checked
// against api/openapi.yaml with kin-openapi's openapi3filter:
//
//   - a response must be described: its status listed for the operation
//     (a 2xx explicitly; an error through the operation's responses), its
//     headers and body valid against the schema (response schemas forbid
//     members they do not list), and a problem's code listed for the
//     operation and status in x-problem-codes or the document's common lists;
//   - a request the document refuses (a wrong type, a value out of bounds, an
//     unknown member) must be refused by the server with a 4xx: the document may not promise what the server does
//     not enforce.
//
// A request for a path or method the document does not describe (the UI,
// /healthz, /metrics, an unknown route) passes unchecked: the route-table
// test keeps every registered route in the document.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/godwit-dev/godwit/api"
)

// Document is the parsed, validated OpenAPI document with its router.
type Document struct {
	Doc    *openapi3.T
	router routers.Router
	common map[string]map[string][]string // group → status → codes
}

// Load parses api.OpenAPI, validates it (opts may add or remove checks, such
// as openapi3.DisableExamplesValidation) and builds a router over its paths
// that ignores the servers list, so any test server's address matches.
func Load(opts ...openapi3.ValidationOption) (*Document, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context, opts...); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid document: %w", err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc, opts...)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: router: %w", err)
	}
	d := &Document{Doc: doc, router: router}
	if d.common, err = problemCodes(doc.Extensions["x-problem-codes"]); err != nil {
		return nil, fmt.Errorf("openapi.yaml: x-problem-codes: %w", err)
	}
	return d, nil
}

// Operation finds the operation documented for method and path (a path of
// the document, such as /v1/members/{id}), or nil.
func (d *Document) Operation(method, path string) *openapi3.Operation {
	item := d.Doc.Paths.Value(path)
	if item == nil {
		return nil
	}
	return item.GetOperation(strings.ToUpper(method))
}

// ProblemCodes returns the codes op may answer with status: its own
// x-problem-codes plus the document's lists that apply to it.
func (d *Document) ProblemCodes(op *openapi3.Operation, status int) ([]string, error) {
	own, err := problemCodes(op.Extensions["x-problem-codes"])
	if err != nil {
		return nil, err
	}
	s := strconv.Itoa(status)
	codes := append([]string(nil), own["_"][s]...)
	codes = append(codes, d.common["every-route"][s]...)
	if op.RequestBody != nil {
		codes = append(codes, d.common["with-body"][s]...)
	}
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == "header" && p.Value.Name == "Idempotency-Key" {
			codes = append(codes, d.common["with-idempotency-key"][s]...)
		}
	}
	return codes, nil
}

// problemCodes reads an x-problem-codes extension: either status → codes
// (an operation's; returned under the group "_") or group → status → codes
// (the document's).
func problemCodes(ext any) (map[string]map[string][]string, error) {
	out := map[string]map[string][]string{}
	if ext == nil {
		return out, nil
	}
	raw, err := json.Marshal(ext)
	if err != nil {
		return nil, err
	}
	var flat map[string][]string
	if json.Unmarshal(raw, &flat) == nil {
		for status := range flat {
			if n, err := strconv.Atoi(status); err != nil || n < 400 || n > 599 {
				return nil, fmt.Errorf("%q is not an error status", status)
			}
		}
		out["_"] = flat
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("want {status: [code]} or {group: {status: [code]}}: %w", err)
	}
	return out, nil
}

// Checker checks traffic against the document and reports every mismatch
// to its test.
type Checker struct {
	tb  testing.TB
	doc *Document

	mu   sync.Mutex
	seen map[string]int // "METHOD path status" → responses checked
}

// shared is the document every Checker uses. Parsing it takes a tenth of a
// second (more under -race) and test suites start dozens of servers, so it
// is parsed once per test binary; it is never modified after loading, and
// kin-openapi's validation only reads it. Its examples are validated by
// TestDocumentIsValid, not here.
//
// The checker then validates values with kin-openapi's own schema validator
// rather than its JSON Schema 2020-12 one, which it picks for a 3.1 document
// and which compiles the schema anew for every value (BenchmarkChecker: 2.7 ms an
// exchange against 0.085 ms, enough to starve the sagas of a concurrent test of CPU).
// The document uses no keyword the own validator lacks: type arrays with
// "null" are honoured, and nullable (3.0 only) is not used.
var shared = sync.OnceValues(func() (*Document, error) {
	d, err := Load(openapi3.DisableExamplesValidation())
	if err == nil {
		d.Doc.OpenAPI = "3.0.3" // what openapi3filter asks to choose the validator
	}
	return d, err
})

// New returns a Checker reporting to tb; the test fails if the document
// does not load.
func New(tb testing.TB) *Checker {
	tb.Helper()
	d, err := shared()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Checker{tb: tb, doc: d, seen: map[string]int{}}
	if path := os.Getenv(CoverageEnv); path != "" {
		tb.Cleanup(func() { c.appendCoverage(path) })
	}
	return c
}

// CoverageEnv names a file to which every Checker appends, when its test
// ends, one "METHOD path status" line per response it checked: cat the file
// through sort -u to see which operations and statuses a run exercised.
const CoverageEnv = "GODWIT_APITEST_COVERAGE"

func (c *Checker) appendCoverage(path string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		c.tb.Errorf("apitest: %s: %v", CoverageEnv, err)
		return
	}
	for k := range c.Seen() {
		fmt.Fprintln(f, k)
	}
	if err := f.Close(); err != nil {
		c.tb.Errorf("apitest: %s: %v", CoverageEnv, err)
	}
}

// Handler wraps next: every request it serves and every response it writes
// are checked against the document.
func Handler(tb testing.TB, next http.Handler) http.Handler {
	tb.Helper()
	return New(tb).Wrap(next)
}

// Server is httptest.NewServer(Handler(tb, h)), closed when the test ends.
func Server(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(Handler(tb, h))
	tb.Cleanup(srv.Close)
	return srv
}

// Proxy returns a server that forwards to target (a base URL such as
// http://127.0.0.1:8080) and checks what passes through: the way to hold a
// server running in another process to the document.
func Proxy(tb testing.TB, target string) *httptest.Server {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("apitest.Proxy(%q): %v", target, err)
	}
	// Rewrite (not Director) adds no X-Forwarded-* headers: the server sees
	// the test's request as the test sent it.
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		// The server is down (a test killed it): the caller must see what it
		// would see without the proxy, a failed connection, not an answer.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set(proxyErrorHeader, "true")
			if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
				_ = conn.Close()
				return
			}
			http.Error(w, "apitest proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	return Server(tb, rp)
}

// proxyErrorHeader marks an answer Proxy made itself.
const proxyErrorHeader = "Apitest-Proxy-Error"

// Seen reports how many responses were checked per "METHOD path status".
func (c *Checker) Seen() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// Wrap returns next with every exchange checked.
func (c *Checker) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, params, err := c.doc.router.FindRoute(r)
		if err != nil {
			next.ServeHTTP(w, r) // not a documented operation
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "apitest: reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		in := &openapi3filter.RequestValidationInput{
			Request:    cloneRequest(r, body),
			PathParams: params,
			Route:      route,
			Options:    requestOptions,
		}
		reqErr := openapi3filter.ValidateRequest(context.Background(), in)

		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.Header().Get(proxyErrorHeader) != "" || r.Context().Err() != nil {
			// A proxy's own answer, or one to a client that went away (the
			// server answers 499 and nobody reads it): nothing to hold to
			// the document.
			return
		}

		c.check(r, body, route, in, reqErr, rec)
	})
}

// requestOptions accept a body sent to an operation that describes none:
// the server ignores such a body. A route that does read a body but does not
// describe it is caught all the same: the codes of a refused body
// (invalid_json, unknown_field, body_too_large, …) are listed only for
// operations with a request body.
var requestOptions = withShortErrors(&openapi3filter.Options{
	AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
	MultiError:         true,
})

var responseOptions = withShortErrors(&openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	IncludeResponseStatus: true,
	MultiError:            true,
})

// withShortErrors makes a schema error say where and what, without the
// schema and value dumps kin-openapi adds by default (pages per failure).
func withShortErrors(o *openapi3filter.Options) *openapi3filter.Options {
	o.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
	})
	return o
}

// check reports what is wrong with one exchange.
func (c *Checker) check(r *http.Request, reqBody []byte, route *routers.Route, in *openapi3filter.RequestValidationInput, reqErr error, rec *recorder) {
	op := route.Operation
	name := fmt.Sprintf("%s %s (%s %s)", r.Method, route.Path, r.Method, r.URL.RequestURI())
	status := rec.status
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %s %d", r.Method, route.Path, status)]++
	c.mu.Unlock()

	var problems []string
	if reqErr != nil && (status < 400 || status > 499) {
		problems = append(problems, fmt.Sprintf("the document refuses this request, but the server answered %d:\n%v\nrequest body: %s",
			status, reqErr, clip(reqBody)))
	}
	if status >= 200 && status <= 299 && op.Responses.Status(status) == nil {
		problems = append(problems, fmt.Sprintf("status %d is not documented", status))
	}
	respIn := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options:                responseOptions,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), respIn); err != nil {
		problems = append(problems, fmt.Sprintf("the response does not match the document:\n%v", err))
	}
	if status >= 400 {
		if msg := c.checkProblemCode(op, status, rec); msg != "" {
			problems = append(problems, msg)
		}
	}
	if len(problems) > 0 {
		c.tb.Errorf("OpenAPI contract: %s → %d:\n  %s\nresponse body: %s", name, status,
			strings.Join(problems, "\n  "), clip(rec.body.Bytes()))
	}
}

// checkProblemCode says what is wrong with an error response's code, or "".
func (c *Checker) checkProblemCode(op *openapi3.Operation, status int, rec *recorder) string {
	mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if mt != "application/problem+json" {
		return fmt.Sprintf("an error answered %s, not application/problem+json", mt)
	}
	var p struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &p); err != nil {
		return fmt.Sprintf("unreadable problem: %v", err)
	}
	codes, err := c.doc.ProblemCodes(op, status)
	if err != nil {
		return fmt.Sprintf("x-problem-codes: %v", err)
	}
	if !slices.Contains(codes, p.Code) {
		return fmt.Sprintf("problem code %q is not listed for status %d (x-problem-codes lists %v)", p.Code, status, codes)
	}
	return ""
}

// cloneRequest gives the validator its own copy of r, body included, so
// validation reads nothing the handler needs.
func cloneRequest(r *http.Request, body []byte) *http.Request {
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(bytes.NewReader(body))
	return c
}

// clip shortens a body for a failure message.
func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// recorder passes a response through and keeps a copy of its status and body.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
