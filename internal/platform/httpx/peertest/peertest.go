// Package peertest serves a service's real routes behind the real httpx.API
// for tests of its HTTP client, with switches to make the server misbehave:
// drop connections, answer 503, answer late, or stop listening.
package peertest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// Secret signs the tokens of every peertest server.
var Secret = []byte("peertest-secret-0123456789abcdef")

// Server is a running test server.
type Server struct {
	URL    string
	Keys   *auth.Keys
	Tokens httpx.TokenSource // a service token for subject "checkout"
	srv    *httptest.Server

	mu       sync.Mutex
	drop     int // connections to drop before answering
	fail503  int // requests to answer 503 before answering
	delay    time.Duration
	requests map[string]int // method+path → requests that reached the routes
}

// Serve starts a server with routes on d (for the idempotency store).
func Serve(t testing.TB, d *db.DB, routes ...httpx.Route) *Server {
	t.Helper()
	keys, err := auth.NewKeys(Secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httpx.NewAPI(keys, idempotency.NewStore(d, idempotency.Options{}), nil)
	api.Add(routes...)
	s := &Server{Keys: keys, Tokens: httpx.ServiceTokens(keys, "checkout"), requests: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		drop, fail, delay := s.drop > 0, s.fail503 > 0, s.delay
		if drop {
			s.drop--
		} else if fail {
			s.fail503--
		}
		s.mu.Unlock()
		switch {
		case drop:
			// Read nothing, answer nothing: the client sees a broken connection.
			hj, ok := w.(http.Hijacker)
			if !ok {
				panic("peertest: cannot hijack")
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		case fail:
			httpx.WriteError(w, r, nil, errs.Coded(errs.Unavailable, "database_unavailable", "try again"))
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		s.requests[r.Method+" "+r.URL.Path]++
		s.mu.Unlock()
		api.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// DropNext makes the next n requests fail with a closed connection.
func (s *Server) DropNext(n int) { s.mu.Lock(); s.drop = n; s.mu.Unlock() }

// Fail503Next makes the next n requests answer 503.
func (s *Server) Fail503Next(n int) { s.mu.Lock(); s.fail503 = n; s.mu.Unlock() }

// Delay makes every following request wait d before it is served.
func (s *Server) Delay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// Requests reports how many requests for method and path reached the routes.
func (s *Server) Requests(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[method+" "+path]
}

// Close stops the server: later calls are refused.
func (s *Server) Close() { s.srv.Close() }

// HTTPClient returns a client whose attempts time out after timeout.
func HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// WantError fails t unless err is an *errs.Error of kind and code whose HTTP
// status (as the caller would answer) is status.
func WantError(t testing.TB, err error, kind errs.Kind, code string, status int) *errs.Error {
	t.Helper()
	e, ok := errs.As(err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *errs.Error", err, err)
	}
	if e.Kind != kind || e.Code != code {
		t.Fatalf("error = %s/%s (%v), want %s/%s", e.Kind, e.Code, err, kind, code)
	}
	if got := httpx.StatusOf(err); got != status {
		t.Fatalf("status of %v = %d, want %d", err, got, status)
	}
	return e
}

// CheckUnreachable checks what a client call makes of a slow and of a dead
// peer: call is made with a client built by newClient(baseURL, hc). A peer
// slower than the client's timeout is errs Timeout "peer_timeout" (504); a
// peer that refuses connections is errs Unavailable "peer_unavailable" (503).
func CheckUnreachable(t *testing.T, srv *Server, call func(baseURL string, hc *http.Client) error) {
	t.Helper()
	t.Run("timeout is 504", func(t *testing.T) {
		srv.Delay(500 * time.Millisecond)
		defer srv.Delay(0)
		WantError(t, call(srv.URL, HTTPClient(50*time.Millisecond)), errs.Timeout, "peer_timeout", http.StatusGatewayTimeout)
	})
	t.Run("refused is 503", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		base := dead.URL
		dead.Close()
		WantError(t, call(base, HTTPClient(time.Second)), errs.Unavailable, "peer_unavailable", http.StatusServiceUnavailable)
	})
}
