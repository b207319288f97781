package httpx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type fixture struct {
	srv  *httptest.Server
	keys *auth.Keys
	d    *db.DB
}

func newKeys(t *testing.T) *auth.Keys {
	t.Helper()
	k, err := auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func token(t *testing.T, k *auth.Keys, s auth.Scope, sub string) string {
	t.Helper()
	tok, err := k.Mint(s, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type echoBody struct {
	Name   string `json:"name"`
	Amount int64  `json:"amount"`
}

func newFixture(t *testing.T, d *db.DB, routes ...httpx.Route) *fixture {
	t.Helper()
	keys := newKeys(t)
	var idem *idempotency.Store
	if d != nil {
		idem = idempotency.NewStore(d, idempotency.Options{})
	}
	api := httpx.NewAPI(keys, idem, nil)
	api.Add(routes...)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, keys: keys, d: d}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(t *testing.T, method, path, tok, body string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func echoRoute() httpx.Route {
	return httpx.Route{Method: "POST", Pattern: "/v1/echo", Access: auth.Public, Handler: func(w http.ResponseWriter, r *http.Request) error {
		var b echoBody
		if err := httpx.Decode(r, &b); err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, b)
		return nil
	}}
}

func TestDecodeRejectsBadBodies(t *testing.T) {
	rt := echoRoute()
	rt.MaxBody = 64
	f := newFixture(t, nil, rt)
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
		wantCode    string
	}{
		{"malformed", `{"name": "a",`, "", 400, "invalid_json"},
		{"syntax error", `{"name" "a"}`, "", 400, "invalid_json"},
		{"empty", ``, "", 400, "invalid_json"},
		{"unknown field", `{"name":"a","evil":1}`, "", 400, "unknown_field"},
		{"wrong type", `{"amount":"ten"}`, "", 400, "invalid_field"},
		{"trailing data", `{"name":"a"} {"name":"b"}`, "", 400, "invalid_json"},
		{"not an object", `[1,2]`, "", 400, "invalid_json"},
		{"oversize", `{"name":"` + strings.Repeat("x", 200) + `"}`, "", 413, "body_too_large"},
		{"wrong media type", `{"name":"a"}`, "text/plain", 415, "unsupported_media_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.contentType != "" {
				hdr["Content-Type"] = tc.contentType
			}
			r := f.do(t, "POST", "/v1/echo", "", tc.body, hdr)
			if r.status != tc.wantStatus || r.body["code"] != tc.wantCode {
				t.Fatalf("got %d %v, want %d %s; body %s", r.status, r.body["code"], tc.wantStatus, tc.wantCode, r.raw)
			}
			if ct := r.header.Get("Content-Type"); ct != httpx.ProblemContentType {
				t.Errorf("Content-Type = %q, want %q", ct, httpx.ProblemContentType)
			}
			for _, k := range []string{"type", "title", "status", "detail", "code"} {
				if _, ok := r.body[k]; !ok {
					t.Errorf("problem lacks %q: %s", k, r.raw)
				}
			}
		})
	}
	ok := f.do(t, "POST", "/v1/echo", "", `{"name":"a","amount":3}`, nil)
	if ok.status != 200 || ok.body["name"] != "a" {
		t.Fatalf("valid body: %d %s", ok.status, ok.raw)
	}
}

func TestPanicBecomesProblem500(t *testing.T) {
	f := newFixture(t, nil, httpx.Route{Method: "GET", Pattern: "/v1/boom", Access: auth.Public, Handler: func(http.ResponseWriter, *http.Request) error {
		panic("secret internal detail")
	}})
	r := f.do(t, "GET", "/v1/boom", "", "", nil)
	if r.status != 500 || r.body["code"] != "internal" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if strings.Contains(r.raw, "secret internal detail") {
		t.Fatalf("panic value leaked to the client: %s", r.raw)
	}
}

func TestInternalErrorMessageIsNotLeaked(t *testing.T) {
	f := newFixture(t, nil, httpx.Route{Method: "GET", Pattern: "/v1/fail", Access: auth.Public, Handler: func(http.ResponseWriter, *http.Request) error {
		return fmt.Errorf("query users: password=hunter2")
	}})
	r := f.do(t, "GET", "/v1/fail", "", "", nil)
	if r.status != 500 || strings.Contains(r.raw, "hunter2") {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
}

func TestUnknownRouteAndMethodAreProblems(t *testing.T) {
	f := newFixture(t, nil, echoRoute())
	if r := f.do(t, "GET", "/v1/nope", "", "", nil); r.status != 404 || r.body["code"] != "route_not_found" {
		t.Fatalf("unknown path: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", "/v1/echo", "", "", nil); r.status != 405 || r.body["code"] != "method_not_allowed" {
		t.Fatalf("wrong method: %d %s", r.status, r.raw)
	}
}

func TestDomainErrorDetailsBecomeExtensionMembers(t *testing.T) {
	f := newFixture(t, nil, httpx.Route{Method: "POST", Pattern: "/v1/redeem", Access: auth.Public, Handler: func(http.ResponseWriter, *http.Request) error {
		return errs.Coded(errs.Unprocessable, "insufficient_points", "you need 500 more points").With("points_short", 500).With("status", "ignored")
	}})
	r := f.do(t, "POST", "/v1/redeem", "", "", nil)
	if r.status != 422 || r.body["code"] != "insufficient_points" || r.body["points_short"] != float64(500) || r.body["status"] != float64(422) {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
}

// TestAuthorizationMatrix checks every policy against every kind of caller.
func TestAuthorizationMatrix(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) error {
		httpx.WriteJSON(w, 200, map[string]string{"actor": auth.FromContext(r.Context()).Actor()})
		return nil
	}
	f := newFixture(t, nil,
		httpx.Route{Method: "GET", Pattern: "/v1/public", Access: auth.Public, Handler: ok},
		httpx.Route{Method: "GET", Pattern: "/v1/admin/thing", Access: auth.AdminOnly, Handler: ok},
		httpx.Route{Method: "GET", Pattern: "/v1/service/thing", Access: auth.ServiceOrAdmin, Handler: ok},
		httpx.Route{Method: "GET", Pattern: "/v1/members/{id}", Access: auth.MemberSelf("id"), Handler: ok},
	)
	other, err := auth.NewKeys([]byte("another-secret-another-secret-123"), nil)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	oldKeys, _ := auth.NewKeys(secret, func() time.Time { return past })
	expired, _ := oldKeys.Mint(auth.ScopeAdmin, "ops", time.Hour)
	callers := map[string]string{
		"none":          "",
		"bad signature": token(t, other, auth.ScopeAdmin, "ops"),
		"expired":       expired,
		"garbage":       "not-a-token",
		"member m1":     token(t, f.keys, auth.ScopeMember, "m1"),
		"member m2":     token(t, f.keys, auth.ScopeMember, "m2"),
		"service":       token(t, f.keys, auth.ScopeService, "airline"),
		"admin":         token(t, f.keys, auth.ScopeAdmin, "ops"),
	}
	want := map[string]map[string]int{
		"/v1/public":        {"none": 200, "bad signature": 401, "expired": 401, "garbage": 401, "member m1": 200, "member m2": 200, "service": 200, "admin": 200},
		"/v1/admin/thing":   {"none": 401, "bad signature": 401, "expired": 401, "garbage": 401, "member m1": 403, "member m2": 403, "service": 403, "admin": 200},
		"/v1/service/thing": {"none": 401, "bad signature": 401, "expired": 401, "garbage": 401, "member m1": 403, "member m2": 403, "service": 200, "admin": 200},
		"/v1/members/m1":    {"none": 401, "bad signature": 401, "expired": 401, "garbage": 401, "member m1": 200, "member m2": 403, "service": 200, "admin": 200},
	}
	for path, byCaller := range want {
		for caller, status := range byCaller {
			r := f.do(t, "GET", path, callers[caller], "", nil)
			if r.status != status {
				t.Errorf("%s as %s: got %d, want %d (%s)", path, caller, r.status, status, r.raw)
			}
			if status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s as %s: 401 without WWW-Authenticate", path, caller)
			}
			if status >= 400 && r.header.Get("Content-Type") != httpx.ProblemContentType {
				t.Errorf("%s as %s: error is not problem+json", path, caller)
			}
		}
	}
	if r := f.do(t, "GET", "/v1/public", callers["expired"], "", nil); r.body["code"] != "token_expired" {
		t.Errorf("expired token code = %v", r.body["code"])
	}
}

// counterRoute moves "value" once per executed request: it counts executions in
// the database, the effect an idempotency key must protect.
func counterRoute(d *db.DB, runs *atomic.Int64, delay time.Duration) httpx.Route {
	return httpx.Route{Method: "POST", Pattern: "/v1/pay", Access: auth.AnyToken, Idempotency: httpx.IdempotencyRequired, Handler: func(w http.ResponseWriter, r *http.Request) error {
		var b echoBody
		if err := httpx.Decode(r, &b); err != nil {
			return err
		}
		if b.Amount < 0 {
			return errs.Coded(errs.Unprocessable, "negative", "amount must be positive")
		}
		if b.Amount == 500 {
			return errs.New(errs.Unavailable, "try later")
		}
		n := runs.Add(1)
		time.Sleep(delay) // widen the window in which duplicates arrive
		err := d.InTx(r.Context(), func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('effects', $1, 'x', 'done', 0, 0)`, fmt.Sprint(n))
			return err
		})
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusCreated, map[string]any{"run": n, "name": b.Name})
		return nil
	}}
}

func effects(t *testing.T, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.Read().QueryRow(`SELECT COUNT(*) FROM idempotency_keys WHERE owner = 'effects'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eachMode runs fn for a plain idempotent route and for an Atomic one, whose
// claim, effect and stored response share one transaction: the guarantees a
// client sees must be the same.
func eachMode(t *testing.T, fn func(t *testing.T, d *db.DB, atomic bool)) {
	for _, mode := range []struct {
		name   string
		atomic bool
	}{{"separate", false}, {"atomic", true}} {
		t.Run(mode.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) { fn(t, d, mode.atomic) })
		})
	}
}

func TestIdempotencyReplayAndReuse(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, atomicMode bool) {
		var runs atomic.Int64
		rt := counterRoute(d, &runs, 0)
		rt.Atomic = atomicMode
		f := newFixture(t, d, rt)
		tok := token(t, f.keys, auth.ScopeService, "shop")
		key := map[string]string{"Idempotency-Key": "order-1"}

		first := f.do(t, "POST", "/v1/pay", tok, `{"name":"a","amount":1}`, key)
		if first.status != 201 || first.header.Get("Idempotency-Replayed") != "" {
			t.Fatalf("first: %d %s", first.status, first.raw)
		}
		again := f.do(t, "POST", "/v1/pay", tok, `{"name":"a","amount":1}`, key)
		if again.status != 201 || again.header.Get("Idempotency-Replayed") != "true" || again.raw != first.raw {
			t.Fatalf("replay: %d %q replayed=%q", again.status, again.raw, again.header.Get("Idempotency-Replayed"))
		}
		reused := f.do(t, "POST", "/v1/pay", tok, `{"name":"a","amount":2}`, key)
		if reused.status != 422 || reused.body["code"] != "idempotency_key_reused" {
			t.Fatalf("reuse: %d %s", reused.status, reused.raw)
		}
		if got := effects(t, d); got != 1 {
			t.Fatalf("effects = %d, want 1", got)
		}
		// The same key from another caller is a different key.
		other := f.do(t, "POST", "/v1/pay", token(t, f.keys, auth.ScopeService, "airline"), `{"name":"a","amount":1}`, key)
		if other.status != 201 || other.header.Get("Idempotency-Replayed") != "" {
			t.Fatalf("other caller: %d %s", other.status, other.raw)
		}
		// A 4xx outcome is stored and replayed too; a 5xx frees the key for a retry.
		bad := map[string]string{"Idempotency-Key": "neg"}
		if r := f.do(t, "POST", "/v1/pay", tok, `{"amount":-1}`, bad); r.status != 422 {
			t.Fatalf("negative: %d", r.status)
		}
		if r := f.do(t, "POST", "/v1/pay", tok, `{"amount":-1}`, bad); r.status != 422 || r.header.Get("Idempotency-Replayed") != "true" {
			t.Fatalf("negative replay: %d %v", r.status, r.header)
		}
		unavail := map[string]string{"Idempotency-Key": "five"}
		for i := 0; i < 2; i++ {
			if r := f.do(t, "POST", "/v1/pay", tok, `{"amount":500}`, unavail); r.status != 503 || r.header.Get("Idempotency-Replayed") != "" {
				t.Fatalf("5xx attempt %d: %d replayed=%q", i, r.status, r.header.Get("Idempotency-Replayed"))
			}
		}
		if r := f.do(t, "POST", "/v1/pay", tok, `{"amount":1}`, nil); r.status != 400 || r.body["code"] != "idempotency_key_required" {
			t.Fatalf("missing key: %d %s", r.status, r.raw)
		}
		if r := f.do(t, "POST", "/v1/pay", tok, `{"amount":1}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}); r.status != 400 || r.body["code"] != "invalid_idempotency_key" {
			t.Fatalf("long key: %d %s", r.status, r.raw)
		}
	})
}

func TestIdempotencyConcurrentDuplicatesRunOnce(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, atomicMode bool) {
		var runs atomic.Int64
		rt := counterRoute(d, &runs, 50*time.Millisecond)
		rt.Atomic = atomicMode
		f := newFixture(t, d, rt)
		tok := token(t, f.keys, auth.ScopeMember, "m1")
		const n = 24
		var wg sync.WaitGroup
		results := make([]response, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = f.do(t, "POST", "/v1/pay", tok, `{"name":"dup","amount":7}`, map[string]string{"Idempotency-Key": "same"})
			}()
		}
		wg.Wait()
		replayed := 0
		for i, r := range results {
			if r.status != 201 {
				t.Fatalf("request %d: %d %s", i, r.status, r.raw)
			}
			if diff := cmp.Diff(results[0].raw, r.raw); diff != "" {
				t.Fatalf("request %d got a different response (-first +this):\n%s", i, diff)
			}
			if r.header.Get("Idempotency-Replayed") == "true" {
				replayed++
			}
		}
		if runs.Load() != 1 || effects(t, d) != 1 {
			t.Fatalf("handler ran %d times, %d effects; want 1", runs.Load(), effects(t, d))
		}
		if replayed != n-1 {
			t.Fatalf("%d replays, want %d", replayed, n-1)
		}
	})
}

// TestAtomicRouteRollsBackWithItsKey: on an Atomic route the request's writes
// share the key's transaction, so a 5xx or a panic after the handler wrote
// leaves neither the write nor the claim, and a retryable database error runs
// the handler again on a clean transaction.
func TestAtomicRouteRollsBackWithItsKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		var runs atomic.Int64
		write := func(ctx context.Context, n int64) error {
			return d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('effects', $1, 'x', 'done', 0, 0)`, fmt.Sprint(n))
				return err
			})
		}
		rt := httpx.Route{Method: "POST", Pattern: "/v1/move", Access: auth.AnyToken, Idempotency: httpx.IdempotencyOptional, Atomic: true,
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				var b echoBody
				if err := httpx.Decode(r, &b); err != nil {
					return err
				}
				n := runs.Add(1)
				if b.Name == "reject-after-write" { // a business rule fails after the transaction wrote
					return d.InTx(r.Context(), func(ctx context.Context, tx *db.Tx) error {
						if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES ('effects', $1, 'x', 'done', 0, 0)`, fmt.Sprint(n)); err != nil {
							return err
						}
						return errs.Coded(errs.Unprocessable, "over_limit", "over the limit")
					})
				}
				if err := write(r.Context(), n); err != nil {
					return err
				}
				switch b.Name {
				case "fail-after-write":
					return errs.New(errs.Unavailable, "downstream unavailable")
				case "panic-after-write":
					panic("handler bug")
				case "conflict-once":
					if n == 1 { // as if PostgreSQL chose this transaction as a deadlock victim
						return fmt.Errorf("move: %w", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"})
					}
				}
				httpx.WriteJSON(w, http.StatusCreated, map[string]any{"run": n})
				return nil
			}}
		f := newFixture(t, d, rt)
		tok := token(t, f.keys, auth.ScopeService, "shop")
		keys := func() int {
			var n int
			if err := d.Read().QueryRow(`SELECT COUNT(*) FROM idempotency_keys WHERE owner <> 'effects'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}

		for _, name := range []string{"fail-after-write", "panic-after-write"} {
			hdr := map[string]string{"Idempotency-Key": name}
			for attempt := 0; attempt < 2; attempt++ {
				r := f.do(t, "POST", "/v1/move", tok, `{"name":"`+name+`"}`, hdr)
				if r.status < 500 || r.header.Get("Idempotency-Replayed") != "" {
					t.Fatalf("%s attempt %d: %d %s replayed=%q", name, attempt, r.status, r.raw, r.header.Get("Idempotency-Replayed"))
				}
			}
			if got := effects(t, d); got != 0 {
				t.Fatalf("%s: %d effects survived a failed request", name, got)
			}
			if got := keys(); got != 0 {
				t.Fatalf("%s: %d idempotency records left; a retry must start clean", name, got)
			}
		}

		// A 4xx from a transaction that had written: the write goes, the answer
		// stays (stored on its own) and is replayed.
		rej := map[string]string{"Idempotency-Key": "reject"}
		first := f.do(t, "POST", "/v1/move", tok, `{"name":"reject-after-write"}`, rej)
		if first.status != 422 || first.body["code"] != "over_limit" || first.header.Get("Idempotency-Replayed") != "" {
			t.Fatalf("reject-after-write: %d %s replayed=%q", first.status, first.raw, first.header.Get("Idempotency-Replayed"))
		}
		again := f.do(t, "POST", "/v1/move", tok, `{"name":"reject-after-write"}`, rej)
		if again.status != 422 || again.raw != first.raw || again.header.Get("Idempotency-Replayed") != "true" {
			t.Fatalf("reject-after-write replay: %d %s replayed=%q", again.status, again.raw, again.header.Get("Idempotency-Replayed"))
		}
		if got := effects(t, d); got != 0 {
			t.Fatalf("reject-after-write: %d effects committed with a rejected request", got)
		}

		runs.Store(0)
		r := f.do(t, "POST", "/v1/move", tok, `{"name":"conflict-once"}`, map[string]string{"Idempotency-Key": "retry"})
		if r.status != 201 || r.body["run"] != float64(2) {
			t.Fatalf("conflict-once: %d %s, want 201 from the second run", r.status, r.raw)
		}
		if got := effects(t, d); got != 1 {
			t.Fatalf("conflict-once: %d effects, want only the second run's", got)
		}
		replay := f.do(t, "POST", "/v1/move", tok, `{"name":"conflict-once"}`, map[string]string{"Idempotency-Key": "retry"})
		if replay.status != 201 || replay.raw != r.raw || replay.header.Get("Idempotency-Replayed") != "true" {
			t.Fatalf("replay: %d %s", replay.status, replay.raw)
		}
	})
}

// encoding/json matches keys case-insensitively; the API does not: a key
// that differs from a field's name only in case is an unknown field.
func TestDecodeKeysAreExact(t *testing.T) {
	f := newFixture(t, nil, echoRoute())
	for _, body := range []string{`{"Name":"a"}`, `{"name":"a","AMOUNT":1}`, `{"nſme":"a"}`} {
		r := f.do(t, "POST", "/v1/echo", "", body, nil)
		if r.status != 400 || r.body["code"] != "unknown_field" {
			t.Errorf("%s: %d %s; want 400 unknown_field", body, r.status, r.raw)
		}
	}
	if r := f.do(t, "POST", "/v1/echo", "", `{"name":"a","amount":1}`, nil); r.status != 200 {
		t.Errorf("exact keys: %d %s", r.status, r.raw)
	}
}
