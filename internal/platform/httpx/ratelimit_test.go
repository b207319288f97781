package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

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
