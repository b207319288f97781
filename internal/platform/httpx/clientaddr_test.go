package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

func TestClientAddr(t *testing.T) {
	trusted, err := httpx.ParseTrustedProxies("10.0.0.0/8, 192.0.2.7,::1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		hdr        map[string][]string
		want       string
	}{
		{"untrusted peer ignores XFF", "198.51.100.9:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.1"}}, "198.51.100.9"},
		{"untrusted peer ignores Forwarded", "198.51.100.9:5000", map[string][]string{"Forwarded": {"for=203.0.113.1"}}, "198.51.100.9"},
		{"trusted peer, one hop", "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.1"}}, "203.0.113.1"},
		{"rightmost untrusted hop wins over a forged left", "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.1"}}, "203.0.113.1"},
		{"trusted hops are skipped", "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.1, 10.9.9.9, 192.0.2.7"}}, "203.0.113.1"},
		{"several header lines", "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"6.6.6.6", "203.0.113.4"}}, "203.0.113.4"},
		{"all hops trusted: the leftmost", "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"10.0.0.5, 10.0.0.6"}}, "10.0.0.5"},
		{"garbage hop stops at the proxy", "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.1, unknown"}}, "10.1.2.3"},
		{"no header: the proxy", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"Forwarded for= with port and IPv6", "[::1]:5000", map[string][]string{"Forwarded": {`for=6.6.6.6, for="[2001:db8::1]:4711";proto=https`}}, "2001:db8::1"},
		{"Forwarded ignored when XFF present", "[::1]:5000", map[string][]string{"Forwarded": {"for=6.6.6.6"}, "X-Forwarded-For": {"203.0.113.2"}}, "203.0.113.2"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.1"}}, "203.0.113.1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for k, vs := range c.hdr {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		if got := trusted.ClientAddr(r); got != c.want {
			t.Errorf("%s: ClientAddr = %q, want %q", c.name, got, c.want)
		}
		if got := httpx.TrustedProxies(nil).ClientAddr(r); got != remoteHost(c.peer) {
			t.Errorf("%s: trusting nobody, ClientAddr = %q, want the peer", c.name, got)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0"} {
		if _, err := httpx.ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted it", bad)
		}
	}
}

func remoteHost(peer string) string {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = peer
	return httpx.TrustedProxies(nil).ClientAddr(r)
}

// Behind a reverse proxy every guest arrives from the proxy's address: with the
// proxy trusted, each guest gets a bucket of its own; without, spoofed headers
// change nothing.
func TestRateLimitBehindProxy(t *testing.T) {
	limited := func(trusted string) *fixture {
		keys := newKeys(t)
		api := httpx.NewAPI(keys, nil, nil)
		api.Add(httpx.Route{Method: "GET", Pattern: "/v1/thing", Access: auth.Public, Handler: func(w http.ResponseWriter, r *http.Request) error {
			httpx.WriteJSON(w, 200, map[string]bool{"ok": true})
			return nil
		}})
		tp, err := httpx.ParseTrustedProxies(trusted)
		if err != nil {
			t.Fatal(err)
		}
		api.SetRateLimits(httpx.RateLimits{Anonymous: httpx.Limit{PerSecond: 0.01, Burst: 2}, TrustedProxies: tp})
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		return &fixture{srv: srv, keys: keys}
	}
	from := func(f *fixture, hdr map[string]string) int {
		return f.do(t, "GET", "/v1/thing", "", "", hdr).status
	}
	guest1 := map[string]string{"X-Forwarded-For": "203.0.113.1"}
	guest2 := map[string]string{"X-Forwarded-For": "203.0.113.2"}

	t.Run("trusted proxy", func(t *testing.T) {
		f := limited("127.0.0.0/8,::1")
		for i := 0; i < 2; i++ {
			if s := from(f, guest1); s != 200 {
				t.Fatalf("guest 1 request %d: %d", i, s)
			}
		}
		if s := from(f, guest1); s != 429 {
			t.Fatalf("guest 1 over its burst: %d", s)
		}
		if s := from(f, guest2); s != 200 {
			t.Fatalf("guest 2 shares guest 1's bucket: %d", s)
		}
		// A guest cannot escape its bucket by prepending addresses.
		if s := from(f, map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.1"}); s != 429 {
			t.Fatalf("guest 1 with a forged hop: %d", s)
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		f := limited("")
		for i := 0; i < 2; i++ {
			if s := from(f, guest1); s != 200 {
				t.Fatalf("request %d: %d", i, s)
			}
		}
		for _, h := range []map[string]string{guest2, {"Forwarded": "for=203.0.113.3"}, {"X-Real-IP": "203.0.113.4"}} {
			if s := from(f, h); s != 429 {
				t.Errorf("spoofed %v got a fresh bucket: %d", h, s)
			}
		}
	})
}
