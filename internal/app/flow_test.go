package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

type client struct {
	t    *testing.T
	base string
}

func (c client) call(method, path, token string, body any, hdr map[string]string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

func mint(t *testing.T, a *app.App, s auth.Scope, sub string) string {
	t.Helper()
	tok, err := a.Keys.Mint(s, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// TestMemberBuysWithPointsAndEarns drives the whole wired server: a member earns
// points for a flight, pays part of a checkout with points, earns purchase
// points, and both movements appear on the statement with their trace ids.
func TestMemberBuysWithPointsAndEarns(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			a, err := app.New(ctx, app.Config{DSN: dbtest.DSN(t, engine), DataDir: t.TempDir(), Secret: []byte("0123456789abcdef0123456789abcdef"), Telemetry: tel, Demo: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			srv := apitest.Server(t, a.Handler)
			t.Cleanup(srv.Close)
			c := client{t: t, base: srv.URL}
			svc := mint(t, a, auth.ScopeService, "airline")
			member := mint(t, a, auth.ScopeMember, "m-flow")

			if code, body := c.call("POST", "/v1/members", svc, map[string]any{"id": "m-flow", "name": "Flo", "email": "flo@example.test"}, nil); code != 201 {
				t.Fatalf("create member: %d %v", code, body)
			}
			code, earn := c.call("POST", "/v1/members/m-flow/activities", svc, map[string]any{
				"type": "flight", "external_id": "PNR-1", "occurred_at": time.Now().UTC().Format(time.RFC3339),
				"flight": map[string]any{"distance_miles": 2475, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "LAX"},
			}, nil)
			if code != 201 || num(earn["total_points_earned"]) != 2475 {
				t.Fatalf("earn: %d %v", code, earn)
			}

			_, products := c.call("GET", "/v1/products", "", nil, nil)
			list, _ := products["products"].([]any)
			if len(list) == 0 {
				t.Fatal("the demo catalog is empty")
			}
			product := list[0].(map[string]any)
			code, cart := c.call("POST", "/v1/carts", member, map[string]any{}, nil)
			if code != 201 {
				t.Fatalf("create cart: %d %v", code, cart)
			}
			cartID := cart["id"].(string)
			if code, body := c.call("POST", "/v1/carts/"+cartID+"/items", member, map[string]any{"product_id": product["id"], "quantity": 1}, nil); code >= 300 {
				t.Fatalf("add item: %d %v", code, body)
			}
			code, order := c.call("POST", "/v1/checkout", member, map[string]any{
				"cart_id": cartID, "payment": map[string]any{"token": "tok_visa"}, "points_to_redeem": 1000,
			}, map[string]string{"Idempotency-Key": "flow-1"})
			if code != 201 || order["status"] != "confirmed" || num(order["points_earned"]) <= 0 {
				t.Fatalf("checkout: %d %v", code, order)
			}

			code, m := c.call("GET", "/v1/members/m-flow", member, nil, nil)
			// The purchase's points pend for its 30-day return window.
			want := int64(2475 - 1000)
			if code != 200 || num(m["balance"]) != want || num(m["pending_points"]) != num(order["points_earned"]) {
				t.Fatalf("balance after checkout = %v pending %v, want %d pending %d (%v)", m["balance"], m["pending_points"], want, num(order["points_earned"]), m)
			}
			code, st := c.call("GET", "/v1/members/m-flow/statement", member, nil, nil)
			entries, _ := st["entries"].([]any)
			pending, _ := st["pending"].([]any)
			if code != 200 || len(entries) != 2 || len(pending) != 1 || num(pending[0].(map[string]any)["points"]) != num(order["points_earned"]) {
				t.Fatalf("statement: %d %v", code, st)
			}
			types := ""
			for _, e := range entries {
				e := e.(map[string]any)
				if tid, _ := e["trace_id"].(string); len(tid) != 32 {
					t.Errorf("statement entry without a trace id: %v", e)
				}
				types += fmt.Sprint(e["type"]) + " "
			}
			if types != "redeem earn " {
				t.Errorf("statement types newest first = %q", types)
			}
			if problems, err := a.Loyalty.Verify(ctx); err != nil || len(problems) > 0 {
				t.Fatalf("ledger verify: %v %v", problems, err)
			}
		})
	}
}
