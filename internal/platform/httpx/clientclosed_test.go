package httpx_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// syncBuffer is a log destination the server's goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A client that disconnects mid-request (killed, timed out) is not a server
// failure: no ERROR line, and its Idempotency-Key is released rather than
// settled, so the retry runs the request and gets the real answer. (An Atomic
// route's handler runs in a write transaction that outlives its request; its
// answer is stored as usual.)
func TestClientGoneIsNotAServerFailure(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		var runs atomic.Int64
		started, finished := make(chan struct{}), make(chan struct{})
		rt := httpx.Route{Method: "POST", Pattern: "/v1/slow", Access: auth.AnyToken, Idempotency: httpx.IdempotencyRequired,
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				if runs.Add(1) == 1 {
					defer close(finished)
					close(started)
					<-r.Context().Done()
					return fmt.Errorf("charging the card: %w", r.Context().Err())
				}
				httpx.WriteJSON(w, http.StatusCreated, map[string]any{"run": runs.Load()})
				return nil
			}}
		logs := &syncBuffer{}
		keys := newKeys(t)
		api := httpx.NewAPI(keys, idempotency.NewStore(d, idempotency.Options{}), slog.New(slog.NewTextHandler(logs, nil)))
		api.Add(rt)
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		tok := token(t, keys, auth.ScopeService, "shop")
		send := func(ctx context.Context) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/slow", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Idempotency-Key", "gone-1")
			return http.DefaultClient.Do(req)
		}

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			res, err := send(ctx)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		<-started
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("the cancelled request got an answer")
		}
		<-finished
		// The key is released after the handler returns; wait for that, not a fixed time.
		var res *http.Response
		for deadline := time.Now().Add(10 * time.Second); ; {
			var err error
			if res, err = send(context.Background()); err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusConflict || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if res.StatusCode != http.StatusCreated || res.Header.Get("Idempotency-Replayed") != "" {
			t.Fatalf("retry after the client went away: %d replayed=%q; want a fresh 201", res.StatusCode, res.Header.Get("Idempotency-Replayed"))
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Fatalf("a client disconnect was logged as a server failure:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "client closed the request") {
			t.Fatalf("the disconnect left no trace in the log:\n%s", logs)
		}
	})
}
