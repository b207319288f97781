package httpx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

func TestRateLimitPerCaller(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) error {
		httpx.WriteJSON(w, 200, map[string]bool{"ok": true})
		return nil
	}
	keys := newKeys(t)
	api := httpx.NewAPI(keys, nil, nil)
	api.Add(httpx.Route{Method: "GET", Pattern: "/v1/thing", Access: auth.Public, Handler: ok})
	api.SetRateLimits(httpx.RateLimits{
		Member:    httpx.Limit{PerSecond: 0.01, Burst: 3},
		Anonymous: httpx.Limit{PerSecond: 0.01, Burst: 2},
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, keys: keys}

	m1, m2 := token(t, keys, auth.ScopeMember, "m1"), token(t, keys, auth.ScopeMember, "m2")
	svc := token(t, keys, auth.ScopeService, "shop")
	status := func(tok string) response { return f.do(t, "GET", "/v1/thing", tok, "", nil) }

	for i := 0; i < 3; i++ {
		if r := status(m1); r.status != 200 {
			t.Fatalf("m1 request %d within burst: %d", i, r.status)
		}
	}
	r := status(m1)
	if r.status != 429 || r.body["code"] != "rate_limited" {
		t.Fatalf("m1 over its burst: %d %s", r.status, r.raw)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	if r := status(m2); r.status != 200 {
		t.Fatalf("another member is limited by m1's traffic: %d", r.status)
	}
	for i := 0; i < 10; i++ { // service tokens are unlimited here (zero rate)
		if r := status(svc); r.status != 200 {
			t.Fatalf("service request %d: %d", i, r.status)
		}
	}
	for i := 0; i < 2; i++ {
		if r := status(""); r.status != 200 {
			t.Fatalf("anonymous request %d: %d", i, r.status)
		}
	}
	if r := status(""); r.status != 429 {
		t.Fatalf("anonymous over its burst: %d", r.status)
	}
}

func TestLoadTestPassSkipsRateLimits(t *testing.T) {
	keys := newKeys(t)
	api := httpx.NewAPI(keys, nil, nil)
	api.Add(httpx.Route{Method: "GET", Pattern: "/v1/thing", Access: auth.Public, Handler: func(w http.ResponseWriter, r *http.Request) error {
		// The pass must not change who the caller is.
		httpx.WriteJSON(w, 200, map[string]string{"actor": auth.FromContext(r.Context()).Actor()})
		return nil
	}})
	api.SetRateLimits(httpx.RateLimits{
		Member: httpx.Limit{PerSecond: 0.01, Burst: 1},
		// 2: a refused bearer token (the pass sent as one, below) takes one
		// from the client address's anonymous bucket.
		Anonymous: httpx.Limit{PerSecond: 0.01, Burst: 2},
	})
	revoked := map[string]bool{}
	var mu sync.Mutex
	api.SetRevocationCheck(func(_ context.Context, id string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return revoked[id], nil
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, keys: keys}

	pass, err := keys.MintLoadTestPass("loadgen", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	withPass := map[string]string{auth.LoadTestPassHeader: pass}
	m1 := token(t, keys, auth.ScopeMember, "m1")
	for i := 0; i < 20; i++ {
		if r := f.do(t, "GET", "/v1/thing", m1, "", withPass); r.status != 200 || r.body["actor"] != "member:m1" {
			t.Fatalf("member request %d with a pass: %d %s", i, r.status, r.raw)
		}
		if r := f.do(t, "GET", "/v1/thing", "", "", withPass); r.status != 200 || r.body["actor"] != "anonymous" {
			t.Fatalf("anonymous request %d with a pass: %d %s", i, r.status, r.raw)
		}
	}
	// A pass is no credential (asked here, while the anonymous bucket still
	// holds a token: a refused token counts against it).
	if r := f.do(t, "GET", "/v1/thing", pass, "", nil); r.status != 401 || r.body["code"] != "invalid_token" {
		t.Errorf("pass as a bearer token: %d %s", r.status, r.raw)
	}
	// Without the pass the same callers are limited as before.
	if r := f.do(t, "GET", "/v1/thing", m1, "", nil); r.status != 200 {
		t.Fatalf("m1's first request without a pass: %d", r.status)
	}
	if r := f.do(t, "GET", "/v1/thing", m1, "", nil); r.status != 429 {
		t.Fatalf("m1 over its burst without a pass: %d", r.status)
	}
	if r := f.do(t, "GET", "/v1/thing", "", "", nil); r.status != 200 {
		t.Fatalf("first anonymous request without a pass: %d", r.status)
	}
	if r := f.do(t, "GET", "/v1/thing", "", "", nil); r.status != 429 {
		t.Fatalf("anonymous over its burst without a pass: %d", r.status)
	}

	// A credential is no pass, and a bad pass is refused.
	if r := f.do(t, "GET", "/v1/thing", "", "", map[string]string{auth.LoadTestPassHeader: m1}); r.status != 401 || r.body["code"] != "invalid_load_test_pass" {
		t.Errorf("member token as a pass: %d %s", r.status, r.raw)
	}
	other, err := auth.NewKeys([]byte("another-secret-another-secret-0123456789"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.MintLoadTestPass("loadgen", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.do(t, "GET", "/v1/thing", "", "", map[string]string{auth.LoadTestPassHeader: forged}); r.status != 401 || r.body["code"] != "invalid_load_test_pass" {
		t.Errorf("pass signed with another secret: %d %s", r.status, r.raw)
	}
	lp, err := keys.VerifyLoadTestPass(pass)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	revoked[lp.TokenID] = true
	mu.Unlock()
	if r := f.do(t, "GET", "/v1/thing", "", "", withPass); r.status != 401 || r.body["code"] != "load_test_pass_revoked" {
		t.Errorf("revoked pass: %d %s", r.status, r.raw)
	}
}
