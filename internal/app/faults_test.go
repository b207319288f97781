package app_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// dedicatedDatabase creates a PostgreSQL database of its own (so it can be
// made unreachable without touching other tests) and returns its DSN and an
// admin connection to the server.
func dedicatedDatabase(t *testing.T) (string, string, *sql.DB) {
	t.Helper()
	base := os.Getenv(dbtest.EnvPostgres)
	if base == "" {
		t.Skipf("%s not set; the database outage test needs PostgreSQL", dbtest.EnvPostgres)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "gwt_fault_" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true")
		if _, err := admin.ExecContext(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), name, admin
}

// TestDatabaseOutage makes the database refuse connections under a running
// app: readiness fails with 503, requests fail with a 5xx problem and write
// nothing, and the app recovers by itself once the database is back.
func TestDatabaseOutage(t *testing.T) {
	dsn, name, admin := dedicatedDatabase(t)
	logs := &testlog.Buffer{}
	r := newRig(t, rigOptions{dsn: dsn, logOut: logs, cfg: app.Config{Demo: true}})
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	w := seedWorld(r)
	ctx := context.Background()
	before := fingerprint(t, r.a.DB)

	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		t.Fatal(err)
	}

	if code, body, _ := r.raw("GET", "/readyz", "", nil, nil); code != 503 {
		t.Errorf("/readyz with the database down = %d %s, want 503", code, body)
	}
	statuses := map[string]int{}
	requests := []struct {
		name, method, path, token string
		body                      any
	}{
		{"earn", "POST", "/v1/members/m-self/activities", w.serviceToken, flight("outage-1", 1000)},
		{"balance", "GET", "/v1/members/m-self", w.selfToken, nil},
		{"transfer", "POST", "/v1/members/m-self/transfers", w.selfToken, map[string]any{"to_member_id": "m-other", "points": 10}},
		{"checkout", "POST", "/v1/checkout", w.selfToken, map[string]any{"cart_id": w.cartID, "payment": map[string]any{"token": "tok_visa"}}},
	}
	for _, rq := range requests {
		code, problem := r.call(rq.method, rq.path, rq.token, rq.body, idem("outage"))
		statuses[rq.name] = code
		if code < 500 {
			t.Errorf("%s with the database down = %d %v, want a 5xx", rq.name, code, problem)
		}
		if problem["code"] == nil {
			t.Errorf("%s with the database down: %d without a problem document", rq.name, code)
		}
		if code == 500 {
			// A database that cannot be reached is 503 database_unavailable
			// (httpx), not a bug's 500.
			t.Errorf("%s with the database down answered 500 %v, want 503", rq.name, problem["code"])
		}
	}

	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, _ := r.raw("GET", "/readyz", "", nil, nil)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 20s after the database came back", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := fingerprint(t, r.a.DB)
	if d := diff(before, after, "idempotency_keys", "checkouts"); d != "" {
		t.Errorf("requests refused during the outage wrote: %s", d)
	}
	r.must("POST", "/v1/members/m-self/activities", w.serviceToken, flight("outage-2", 1000), nil)
	if _, err := r.a.Checkout.Recover(ctx); err != nil {
		t.Fatalf("recover: %v", err)
	}
	requireVerified(t, r.a, time.Hour)
	t.Logf("statuses during the outage: %v", statuses)
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestCollectorFaults runs the same request loop with no exporter, with the
// OTLP endpoint on a closed port, and with a collector that takes seconds to
// answer: requests are unaffected (throughput within a factor of the
// baseline) and the heap stays bounded.
func TestCollectorFaults(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(slow.Close)
	fast := map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "20", "OTEL_BLRP_SCHEDULE_DELAY": "20", "OTEL_METRIC_EXPORT_INTERVAL": "100",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TIMEOUT": "5000"}
	env := func(endpoint string) func(string) string {
		if endpoint == "" {
			return func(string) string { return "" }
		}
		return func(k string) string {
			if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
				return endpoint
			}
			return fast[k]
		}
	}
	const window = 1500 * time.Millisecond
	counts := map[string]int{}
	for _, tc := range []struct{ name, endpoint string }{
		{"no exporter", ""},
		{"collector down", "http://" + closedPort(t)},
		{"collector slow", slow.URL},
	} {
		r := newRig(t, rigOptions{getenv: env(tc.endpoint), cfg: app.Config{Demo: true}})
		w := seedWorld(r)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapBefore := ms.HeapAlloc
		n := 0
		for start := time.Now(); time.Since(start) < window; n++ {
			code, out := r.call("POST", "/v1/members/m-self/activities", w.serviceToken, flight(nextKey("otlp"), 500), nil)
			if code != 201 {
				t.Fatalf("%s: earn = %d %v", tc.name, code, out)
			}
			r.must("GET", "/v1/members/m-self", w.selfToken, nil, nil)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if grown := int64(ms.HeapAlloc) - int64(heapBefore); grown > 256<<20 {
			t.Errorf("%s: the heap grew by %d MiB over %d request pairs", tc.name, grown>>20, n)
		}
		counts[tc.name] = n
		requireVerified(t, r.a, time.Hour)
		// Shutdown with a dead or slow collector is bounded too.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		_ = r.tel.Shutdown(ctx)
		cancel()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: telemetry shutdown took %s", tc.name, took)
		}
	}
	base := counts["no exporter"]
	for name, n := range counts {
		if n*3 < base {
			t.Errorf("%s: %d request pairs in %s, against %d with no exporter", name, n, window, base)
		}
	}
	t.Logf("request pairs completed in %s: %v", window, counts)
}

// TestPaymentGatewayTimeout lets a checkout's charge outlive the client (the
// gateway hangs, the client gives up), then retries with the same
// Idempotency-Key: recovery compensates or completes it, and there is never
// more than one live charge for the checkout.
func TestPaymentGatewayTimeout(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: engine, cfg: app.Config{Demo: true, CheckoutLease: 500 * time.Millisecond}})
			w := seedWorld(r)
			ctx := context.Background()
			liveCharges := func() int64 {
				var n int64
				if err := r.a.DB.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM payment_charges WHERE status IN ('succeeded', 'partially_refunded')`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			charges := liveCharges()
			r.must("PUT", "/v1/admin/faults/payment", w.adminToken, map[string]any{"latency_ms": 2000}, nil)
			key := nextKey("gw-timeout")
			body := []byte(`{"cart_id":"` + w.cartID + `","payment":{"token":"tok_visa"}}`)
			impatient := &http.Client{Timeout: 300 * time.Millisecond}
			req, _ := http.NewRequest("POST", r.srv.URL+"/v1/checkout", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+w.selfToken)
			req.Header.Set("Idempotency-Key", key)
			if res, err := impatient.Do(req); err == nil {
				res.Body.Close()
				t.Fatalf("the checkout answered %d within 300ms despite a 2s gateway", res.StatusCode)
			}
			r.must("PUT", "/v1/admin/faults/payment", w.adminToken, map[string]any{"latency_ms": 0}, nil)
			time.Sleep(700 * time.Millisecond) // past the checkout lease

			if _, err := r.a.Checkout.Recover(ctx); err != nil {
				t.Fatalf("recover: %v", err)
			}
			var code int
			var out map[string]any
			for i := 0; i < 50; i++ {
				code, out = r.call("POST", "/v1/checkout", w.selfToken, rawJSON(body), map[string]string{"Idempotency-Key": key})
				if code != 409 || out["code"] != "idempotency_key_in_progress" {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code >= 500 {
				t.Fatalf("retry after the timeout: %d %v", code, out)
			}
			again, out2 := r.call("POST", "/v1/checkout", w.selfToken, rawJSON(body), map[string]string{"Idempotency-Key": key})
			if again != code || out2["order_id"] != out["order_id"] {
				t.Errorf("a second retry differs: %d %v, then %d %v", code, out, again, out2)
			}
			if _, err := r.a.Checkout.Recover(ctx); err != nil {
				t.Fatalf("recover: %v", err)
			}
			if got := liveCharges() - charges; got > 1 || (code == 201) != (got == 1) {
				t.Errorf("live charges for the checkout: %d (retry answered %d %v)", got, code, out["status"])
			}
			requireVerified(t, r.a, 0)
			t.Logf("retry answered %d %v %v (failure_step %v); live charges added: %d", code, out["code"], out["status"], out["failure_step"], liveCharges()-charges)
		})
	}
}

// rawJSON passes raw JSON through rig.call, which marshals its body.
type rawJSON []byte

func (j rawJSON) MarshalJSON() ([]byte, error) { return j, nil }

// TestFaultPointRoutes drives the one admin route shape for fault points,
// GET /v1/admin/faults and GET/PUT /v1/admin/faults/{point}, beside the
// per-service routes it shares its settings with.
func TestFaultPointRoutes(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: engine, cfg: app.Config{Demo: true}})
			w := seedWorld(r)
			admin := w.adminToken

			list := r.must("GET", "/v1/admin/faults", admin, nil, nil)["faults"].([]any)
			points := map[string]map[string]any{}
			for _, p := range list {
				m := p.(map[string]any)
				points[m["point"].(string)] = m
			}
			for _, name := range []string{"payment.charge", "inventory.reserve", "loyalty.fulfillment", "loyalty.partner.northwind-airways", "order.create", "order.created"} {
				if points[name] == nil {
					t.Errorf("GET /v1/admin/faults lacks %s: %v", name, list)
				}
			}
			if p := points["payment.charge"]; p["decline_code"] != "generic_decline" || p["source"] != "default" || p["fail"] != nil {
				t.Errorf("payment.charge = %v; want its default decline code and no fail knob", p)
			}
			if p := points["loyalty.fulfillment"]; p["source"] != "program" || p["fail"] != false {
				t.Errorf("loyalty.fulfillment = %v; want the program file's setting", p)
			}

			// The generic route and the inventory's own route share one setting.
			got := r.must("PUT", "/v1/admin/faults/inventory.reserve", admin, map[string]any{"delay_ms": 5}, nil)
			if got["delay_ms"] != 5.0 || got["source"] != "admin" || got["updated_by"] != "admin:rig-admin" {
				t.Errorf("PUT inventory.reserve = %v", got)
			}
			if got := r.must("GET", "/v1/admin/faults/inventory", admin, nil, nil); got["reserve_delay_ms"] != 5.0 {
				t.Errorf("old inventory route = %v, want the generic route's delay", got)
			}
			r.must("PUT", "/v1/admin/faults/inventory", admin, map[string]any{"reserve_delay_ms": 0}, nil)
			if got := r.must("GET", "/v1/admin/faults/inventory.reserve", admin, nil, nil); got["delay_ms"] != 0.0 {
				t.Errorf("generic route after the old PUT = %v", got)
			}

			r.must("PUT", "/v1/admin/faults/payment", admin, map[string]any{"latency_ms": 3, "decline_rate_percent": 100, "decline_code": "lost_card"}, nil)
			if got := r.must("GET", "/v1/admin/faults/payment.charge", admin, nil, nil); got["delay_ms"] != 3.0 || got["decline_rate_percent"] != 100.0 || got["decline_code"] != "lost_card" {
				t.Errorf("payment.charge after the old PUT = %v", got)
			}
			r.must("PUT", "/v1/admin/faults/payment.charge", admin, map[string]any{}, nil)
			if got := r.must("GET", "/v1/admin/faults/payment", admin, nil, nil); got["latency_ms"] != 0.0 || got["decline_rate_percent"] != 0.0 || got["decline_code"] != "generic_decline" {
				t.Errorf("old payment route after a generic reset = %v", got)
			}

			r.must("PUT", "/v1/admin/faults/loyalty.fulfillment", admin, map[string]any{"fail": true}, nil)
			if got := r.must("GET", "/v1/admin/faults/fulfillment", admin, nil, nil); got["target"] != "fulfillment" || got["fail"] != true || got["source"] != "admin" {
				t.Errorf("old fulfilment route = %v", got)
			}
			r.must("PUT", "/v1/admin/faults/partners/northwind-airways", admin, map[string]any{"fail": false, "delay_ms": 7}, nil)
			if got := r.must("GET", "/v1/admin/faults/loyalty.partner.northwind-airways", admin, nil, nil); got["delay_ms"] != 7.0 || got["fail"] != false {
				t.Errorf("partner point after the old PUT = %v", got)
			}

			for _, tc := range []struct {
				method, path, token string
				body                any
				status              int
				code                string
			}{
				{"PUT", "/v1/admin/faults/inventory.reserve", admin, map[string]any{"fail": true}, 400, "invalid_field"},
				{"PUT", "/v1/admin/faults/payment.charge", admin, map[string]any{"decline_rate_percent": 101}, 400, "invalid_field"},
				{"PUT", "/v1/admin/faults/payment.charge", admin, map[string]any{"bogus": 1}, 400, ""},
				{"GET", "/v1/admin/faults/nope", admin, nil, 404, "fault_point_not_found"},
				{"PUT", "/v1/admin/faults/nope", admin, map[string]any{}, 404, "fault_point_not_found"},
				{"GET", "/v1/admin/faults", w.selfToken, nil, 403, ""},
				{"PUT", "/v1/admin/faults/payment.charge", w.serviceToken, map[string]any{}, 403, ""},
			} {
				code, problem := r.call(tc.method, tc.path, tc.token, tc.body, nil)
				if code != tc.status || (tc.code != "" && problem["code"] != tc.code) {
					t.Errorf("%s %s = %d %v, want %d %s", tc.method, tc.path, code, problem, tc.status, tc.code)
				}
			}
		})
	}
}

// TestFaultPointsInSplitMode: a process serves the fault points of the
// services it runs, and only those.
func TestFaultPointsInSplitMode(t *testing.T) {
	a, err := newSplitApp(t, []string{"inventory"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.Server(t, a.Handler)
	defer srv.Close()
	tok, err := a.Keys.Mint(auth.ScopeAdmin, "split", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/v1/admin/faults"); code != 200 || !strings.Contains(body, `"inventory.reserve"`) || strings.Contains(body, "payment.charge") || strings.Contains(body, "loyalty.") || strings.Contains(body, "order.") {
		t.Errorf("inventory process lists %d %s, want only inventory.reserve", code, body)
	}
	if code, _ := get("/v1/admin/faults/payment.charge"); code != 404 {
		t.Errorf("inventory process serves payment.charge: %d", code)
	}
}
