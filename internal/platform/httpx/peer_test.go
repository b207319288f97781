package httpx_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

// counterRoutes is a tiny service: a POST that counts its effects and a GET.
func counterRoutes(n *atomic.Int64) []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/count", Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional,
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				httpx.WriteJSON(w, http.StatusOK, map[string]int64{"n": n.Add(1)})
				return nil
			}},
		{Method: "GET", Pattern: "/internal/v1/count", Access: auth.ServiceOrAdmin,
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				httpx.WriteJSON(w, http.StatusOK, map[string]int64{"n": n.Load()})
				return nil
			}},
		{Method: "POST", Pattern: "/internal/v1/short", Access: auth.ServiceOrAdmin,
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				return errs.Coded(errs.Unprocessable, "insufficient_points", "not enough points").With("points_short", 25).With("current_balance", 75)
			}},
	}
}

func TestPeerCalls(t *testing.T) {
	d := dbtest.New(t, db.SQLite)
	var n atomic.Int64
	srv := peertest.Serve(t, d, counterRoutes(&n)...)
	ctx := context.Background()
	peer := func(timeout time.Duration) *httpx.Peer {
		return httpx.NewPeer("counter", srv.URL, peertest.HTTPClient(timeout), srv.Tokens)
	}
	var out struct{ N int64 }

	t.Run("problem details survive the trip", func(t *testing.T) {
		err := peer(time.Second).Do(ctx, httpx.Call{Method: "POST", Path: "/internal/v1/short", Body: map[string]any{}})
		e := peertest.WantError(t, err, errs.Unprocessable, "insufficient_points", 422)
		got, _ := json.Marshal(e.Details)
		if diff := cmp.Diff(`{"current_balance":75,"points_short":25}`, string(got)); diff != "" {
			t.Fatalf("details (-want +got):\n%s", diff)
		}
	})
	t.Run("no token is 401", func(t *testing.T) {
		err := httpx.NewPeer("counter", srv.URL, nil, nil).Do(ctx, httpx.Call{Method: "GET", Path: "/internal/v1/count"})
		peertest.WantError(t, err, errs.Unauthorized, "unauthenticated", 401)
	})
	t.Run("keyed POST is retried after a dropped connection, once in effect", func(t *testing.T) {
		before := n.Load()
		srv.DropNext(2)
		err := peer(time.Second).Do(ctx, httpx.Call{Method: "POST", Path: "/internal/v1/count", Body: map[string]any{}, Out: &out, IdempotencyKey: "k-1"})
		if err != nil || out.N != before+1 {
			t.Fatalf("err %v, n %d (before %d)", err, out.N, before)
		}
		// A later repeat with the same key replays the first answer.
		if err := peer(time.Second).Do(ctx, httpx.Call{Method: "POST", Path: "/internal/v1/count", Body: map[string]any{}, Out: &out, IdempotencyKey: "k-1"}); err != nil || out.N != before+1 || n.Load() != before+1 {
			t.Fatalf("replay: err %v, n %d, effects %d", err, out.N, n.Load()-before)
		}
	})
	t.Run("GET is retried after 503", func(t *testing.T) {
		srv.Fail503Next(2)
		if err := peer(time.Second).Do(ctx, httpx.Call{Method: "GET", Path: "/internal/v1/count", Out: &out}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("attempts are bounded", func(t *testing.T) {
		srv.Fail503Next(5)
		err := peer(time.Second).Do(ctx, httpx.Call{Method: "GET", Path: "/internal/v1/count", Out: &out})
		peertest.WantError(t, err, errs.Unavailable, "database_unavailable", 503)
		srv.Fail503Next(0)
	})
	t.Run("unkeyed POST is not retried", func(t *testing.T) {
		before := n.Load()
		srv.DropNext(1)
		err := peer(time.Second).Do(ctx, httpx.Call{Method: "POST", Path: "/internal/v1/count", Body: map[string]any{}, Out: &out})
		e := peertest.WantError(t, err, errs.Unavailable, "peer_unavailable", 503)
		if e.Details["peer"] != "counter" || n.Load() != before {
			t.Fatalf("details %v, effects %d", e.Details, n.Load()-before)
		}
	})
	t.Run("timeout is 504 and not repeated", func(t *testing.T) {
		srv.Delay(300 * time.Millisecond)
		defer srv.Delay(0)
		before := srv.Requests("GET", "/internal/v1/count")
		err := peer(50*time.Millisecond).Do(ctx, httpx.Call{Method: "GET", Path: "/internal/v1/count", Out: &out})
		peertest.WantError(t, err, errs.Timeout, "peer_timeout", 504)
		time.Sleep(400 * time.Millisecond)
		if got := srv.Requests("GET", "/internal/v1/count") - before; got > 1 {
			t.Fatalf("%d attempts after a timeout, want 1", got)
		}
	})
	t.Run("refused is 503", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		err := httpx.NewPeer("payment", url, peertest.HTTPClient(time.Second), srv.Tokens).Do(ctx, httpx.Call{Method: "POST", Path: "/x", Body: map[string]any{}})
		e := peertest.WantError(t, err, errs.Unavailable, "peer_unavailable", 503)
		if e.Details["peer"] != "payment" {
			t.Fatalf("details %v", e.Details)
		}
	})
}

func TestErrorFromResponse(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		wantKind   errs.Kind
		wantCode   string
	}{
		{"problem", `{"type":"urn:godwit:problem:insufficient_stock","status":409,"code":"insufficient_stock","detail":"short","products":[{"product_id":"p"}]}`, 409, errs.Conflict, "insufficient_stock"},
		{"declined", `{"code":"payment_declined","detail":"declined","decline_code":"card_declined","retryable":false}`, 402, errs.PaymentRequired, "payment_declined"},
		{"not a problem", `<html>bad gateway</html>`, 502, errs.BadGateway, "bad_gateway"},
		{"unknown 4xx", `{}`, 418, errs.Invalid, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.WriteHeader(tc.status)
			rec.WriteString(tc.body)
			err := httpx.ErrorFromResponse(rec.Result())
			if errs.KindOf(err) != tc.wantKind || errs.CodeOf(err) != tc.wantCode {
				t.Fatalf("got %s/%s, want %s/%s", errs.KindOf(err), errs.CodeOf(err), tc.wantKind, tc.wantCode)
			}
			// Mapped back to a problem, the status is the peer's own.
			if tc.status != 418 && httpx.StatusOf(err) != tc.status {
				t.Fatalf("status %d, want %d", httpx.StatusOf(err), tc.status)
			}
		})
	}
}
