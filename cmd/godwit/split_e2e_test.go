package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
)

// splitServices are the services the split-mode test runs, one OS process each.
var splitServices = []string{"checkout", "cart", "catalog", "inventory", "payment", "order", "loyalty", "notify"}

// cluster is Godwit split into one process per service, sharing one database.
type cluster struct {
	t      *testing.T
	env    []string
	common []string // --data-dir/--db/--secret
	addrs  map[string]string
	// peers are the URLs the processes call each other at: a proxy per
	// service that holds the internal calls to the OpenAPI document.
	peers   map[string]string
	procs   map[string]*server
	keys    *auth.Keys
	admin   string
	dataDir string
	dsn     string // "" for SQLite in dataDir
}

// freeAddr returns a loopback address no one listens on, for a process
// started later. It picks below the kernel's ephemeral range (32768 and up
// by default): a port from that range, freed here, could be handed to one
// of the many outgoing database connections of tests running in parallel
// before the process binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return addr
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

func newCluster(t *testing.T, recv *otlptest.Receiver, dsn string) *cluster {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := keys.Mint(auth.ScopeAdmin, "split-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, keys: keys, admin: admin, dataDir: t.TempDir(), dsn: dsn,
		addrs: map[string]string{}, peers: map[string]string{}, procs: map[string]*server{},
		env: []string{
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Endpoint(),
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_BSP_SCHEDULE_DELAY=100",
		}}
	c.common = []string{"--data-dir", c.dataDir, "--secret", hex.EncodeToString(secret), "--log-level", "warn"}
	if dsn != "" {
		c.common = append(c.common, "--db", dsn)
	}
	for _, s := range splitServices {
		c.addrs[s] = freeAddr(t)
		c.peers[s] = apitest.Proxy(t, "http://"+c.addrs[s]).URL
	}
	for _, s := range splitServices {
		c.start(s)
	}
	return c
}

// start runs service s on its fixed address, with every other service as a peer.
func (c *cluster) start(s string) {
	c.t.Helper()
	args := append([]string{"--addr", c.addrs[s], "--services", s,
		// Recovery runs when the test asks; a short lease lets it take over soon.
		"--checkout-lease", "2s", "--recovery-interval", "1h", "--outbox-interval", "200ms",
		"--demo"}, c.common...) // demo data on PostgreSQL too
	for _, p := range splitServices {
		if p != s {
			args = append(args, "--peer", p+"="+c.peers[p])
		}
	}
	c.procs[s] = startServer(c.t, c.env, args...)
}

// kill ends service s at once, as a crash would.
func (c *cluster) kill(s string) {
	c.t.Helper()
	p := c.procs[s]
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-p.done
}

func (c *cluster) stopAll() {
	c.t.Helper()
	for _, s := range splitServices {
		if err, _ := c.procs[s].stop(c.t); err != nil {
			c.t.Errorf("%s exit: %v\n%s", s, err, c.procs[s].stderr)
		}
	}
}

func (c *cluster) token(scope auth.Scope, sub string) string {
	c.t.Helper()
	tok, err := c.keys.Mint(scope, sub, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// call sends a JSON request to service s and decodes the answer.
func (c *cluster) call(s, method, path, token string, body any, hdr map[string]string) (int, map[string]any) {
	c.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, c.procs[s].base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on %s: %v", method, path, s, err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func (c *cluster) must(s, method, path, token string, body any, want int) map[string]any {
	c.t.Helper()
	code, out := c.call(s, method, path, token, body, nil)
	if code != want {
		c.t.Fatalf("%s %s on %s = %d %v, want %d\nstderr:\n%s", method, path, s, code, out, want, c.procs[s].stderr)
	}
	return out
}

// cart makes a member's cart with one backpack through the cart process.
func (c *cluster) cart(member string) string {
	c.t.Helper()
	tok := c.token(auth.ScopeMember, member)
	id := c.must("cart", "POST", "/v1/carts", tok, map[string]any{}, 201)["id"].(string)
	c.must("cart", "POST", "/v1/carts/"+id+"/items", tok, map[string]any{"product_id": "prod_demo_backpack", "quantity": 1}, 200)
	return id
}

func (c *cluster) checkout(member, cartID, key, payToken string, points int64) (int, map[string]any) {
	c.t.Helper()
	return c.call("checkout", "POST", "/v1/checkout", c.token(auth.ScopeMember, member),
		map[string]any{"cart_id": cartID, "payment": map[string]any{"token": payToken}, "points_to_redeem": points, "email": "split@example.test"},
		map[string]string{"Idempotency-Key": key})
}

// recoverAfterLease runs the recovery pass once the checkouts' leases ran out.
func (c *cluster) recoverAfterLease() map[string]any {
	c.t.Helper()
	// The 2 s lease, then the retry window (one more lease) in which recovery
	// leaves a checkout to its client's retry.
	time.Sleep(4500 * time.Millisecond)
	rep := c.must("checkout", "POST", "/v1/admin/checkouts/recover", c.admin, nil, 200)
	if rep["errors"].(float64) != 0 {
		c.t.Fatalf("recovery pass had errors: %v\ncheckout stderr:\n%s", rep, c.procs["checkout"].stderr)
	}
	return rep
}

func (c *cluster) checkoutState(member, key string) map[string]any {
	c.t.Helper()
	return c.must("checkout", "GET", "/v1/admin/checkouts/"+checkout.ID("member:"+member, key), c.admin, nil, 200)
}

// TestSplitMode runs every service as its own process of the built binary on
// one database (SQLite, and PostgreSQL when GODWIT_TEST_POSTGRES is set),
// checks that a member's checkout is one trace across all of them, then kills
// services mid-run and checks the failures, the recovery and the books.
func TestSplitMode(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dsn := ""
			if e == db.Postgres {
				dsn = dbtest.DSN(t, db.Postgres)
			}
			testSplit(t, dsn)
		})
	}
}

func testSplit(t *testing.T, dsn string) {
	recv := otlptest.NewReceiver(t)
	c := newCluster(t, recv, dsn)

	// A member with points, seeded through the loyalty process's API.
	member := "split-" + strings.ToLower(hex.EncodeToString([]byte(t.Name()))[:8])
	c.must("loyalty", "POST", "/v1/members", c.admin, map[string]any{"id": member, "name": "Split Tester", "email": "split@example.test"}, 201)
	earn := c.must("loyalty", "POST", "/v1/members/"+member+"/activities", c.admin, map[string]any{
		"type": "flight", "external_id": "split-flight-1",
		"flight": map[string]any{"distance_miles": 5837, "fare_class": "J", "cabin": "business", "origin": "JFK", "destination": "NRT"},
	}, 201)
	if earn["total_points_earned"].(float64) < 1000 {
		t.Fatalf("seed earned too few points: %v", earn)
	}

	code, res := c.checkout(member, c.cart(member), "split-ok", "tok_visa", 1000)
	if code != 201 || res["status"] != "confirmed" || res["points_redeemed"].(float64) != 1000 {
		t.Fatalf("checkout = %d %v\ncheckout stderr:\n%s", code, res, c.procs["checkout"].stderr)
	}
	traceID := res["trace_id"].(string)
	checkSplitTrace(t, recv, traceID, member)

	// Inventory down: the saga fails at once at reserving_inventory, with 503.
	c.kill("inventory")
	code, res = c.checkout(member, c.cart(member), "split-no-inventory", "tok_visa", 0)
	if code != 503 || res["failure_step"] != checkout.StepReservingInventory || res["code"] != "peer_unavailable" || res["peer"] != "inventory" {
		t.Fatalf("checkout with inventory down = %d %v", code, res)
	}
	c.start("inventory")

	// Payment killed mid-charge (tok_slow answers after 3s): 503 naming the step.
	cartID := c.cart(member)
	type answer struct {
		code int
		body map[string]any
	}
	done := make(chan answer, 1)
	go func() {
		code, body := c.checkout(member, cartID, "split-payment-killed", "tok_slow", 500)
		done <- answer{code, body}
	}()
	time.Sleep(1500 * time.Millisecond)
	c.kill("payment")
	a := <-done
	if a.code != 503 || a.body["failure_step"] != checkout.StepProcessingPayment {
		t.Fatalf("checkout with payment killed = %d %v", a.code, a.body)
	}
	// The record names the step the answer named.
	if st := c.checkoutState(member, "split-payment-killed"); st["step"] != checkout.StepProcessingPayment {
		t.Errorf("payment-killed checkout recorded at %v, the answer said %s", st["step"], checkout.StepProcessingPayment)
	}
	c.start("payment")

	// Order down after the charge: 503 at creating_order; recovery completes it.
	c.kill("order")
	code, res = c.checkout(member, c.cart(member), "split-no-order", "tok_visa", 0)
	if code != 503 || res["failure_step"] != checkout.StepCreatingOrder {
		t.Fatalf("checkout with order down = %d %v", code, res)
	}
	c.start("order")

	rep := c.recoverAfterLease()
	if rep["checked"].(float64) < 2 {
		t.Fatalf("recovery checked %v, want the two interrupted checkouts", rep)
	}
	if st := c.checkoutState(member, "split-payment-killed"); st["state"] != "failed" && st["state"] != "completed" {
		t.Fatalf("payment-killed checkout after recovery: %v", st)
	}
	if st := c.checkoutState(member, "split-no-order"); st["state"] != "completed" || st["order_id"] == "" {
		t.Fatalf("order-down checkout after recovery: %v", st)
	}
	if st := c.checkoutState(member, "split-no-inventory"); st["state"] != "failed" {
		t.Fatalf("inventory-down checkout: %v", st)
	}

	c.stopAll()
	args := []string{"verify", "--data-dir", c.dataDir}
	args = append(args, c.common[2:4]...) // --secret
	if dsn != "" {
		args = append(args, "--db", dsn)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut, func(string) string { return "" }); err != nil || !strings.Contains(out.String(), "no violations") {
		t.Fatalf("godwit verify: %v\n%s%s", err, out.String(), errOut.String())
	}
	if dsn == "" {
		if _, err := os.Stat(filepath.Join(c.dataDir, "godwit.db")); err != nil {
			t.Fatalf("no shared SQLite database: %v", err)
		}
	}
}

// checkSplitTrace waits for the checkout's spans from every process and checks
// the tree: one trace, one root, every server span in a process parented by
// the client span of the process that called it, each process's service.name,
// and the business attributes.
func checkSplitTrace(t *testing.T, recv *otlptest.Receiver, traceID, member string) {
	t.Helper()
	callee := []string{"cart", "catalog", "inventory", "payment", "order", "loyalty"}
	inTrace := func(spans []otlptest.Span) []otlptest.Span {
		var out []otlptest.Span
		for _, s := range spans {
			if s.TraceID == traceID {
				out = append(out, s)
			}
		}
		return out
	}
	complete := func(spans []otlptest.Span) bool {
		have := map[string]bool{}
		names := map[string]bool{}
		ids := map[string]bool{}
		for _, s := range inTrace(spans) {
			if s.Kind == "server" {
				have[fmt.Sprint(s.Resource["service.name"])] = true
			}
			names[s.Name] = true
			ids[s.SpanID] = true
		}
		// Processes export in their own batches: a parent that ends after its
		// children can arrive later. Wait until every parent has arrived.
		for _, s := range inTrace(spans) {
			if s.ParentSpanID != "" && !ids[s.ParentSpanID] {
				return false
			}
		}
		for _, svc := range append([]string{"checkout"}, callee...) {
			if !have["godwit-"+svc] {
				return false
			}
		}
		return names["checkout.process"] && names["loyalty.earn_points"] && names["order.create"] && names["payment.process"]
	}
	all := recv.WaitForSpans(t, complete, 20*time.Second)
	spans := inTrace(all)
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	service := func(s otlptest.Span) string { return fmt.Sprint(s.Resource["service.name"]) }
	roots := 0
	crossings := map[string]int{}
	for _, s := range spans {
		if s.Resource["service.namespace"] != "godwit" {
			t.Errorf("span %s: service.namespace %v", s.Name, s.Resource["service.namespace"])
		}
		if s.ParentSpanID == "" {
			roots++
			if s.Name != "POST /v1/checkout" || service(s) != "godwit-checkout" {
				t.Errorf("root span %s in %s, want POST /v1/checkout in godwit-checkout", s.Name, service(s))
			}
			continue
		}
		parent, ok := byID[s.ParentSpanID]
		if !ok {
			t.Errorf("span %s (%s) has parent %s, not in the trace", s.Name, service(s), s.ParentSpanID)
			continue
		}
		if service(parent) != service(s) {
			// Crossing a process boundary: a server span under the caller's client span.
			if s.Kind != "server" || parent.Kind != "client" {
				t.Errorf("cross-process edge %s (%s, %s) ← %s (%s, %s): want server under client",
					s.Name, service(s), s.Kind, parent.Name, service(parent), parent.Kind)
			}
			if !strings.HasPrefix(s.Name, "POST /internal/") && !strings.HasPrefix(s.Name, "GET /internal/") {
				t.Errorf("cross-process server span %s: want an internal route", s.Name)
			}
			if parent.Name != s.Name {
				t.Errorf("client span %q calls server span %q: names differ", parent.Name, s.Name)
			}
			crossings[service(s)]++
		}
	}
	if roots != 1 {
		t.Errorf("%d root spans in the checkout trace, want 1", roots)
	}
	for _, svc := range callee {
		if crossings["godwit-"+svc] == 0 {
			t.Errorf("no call from another process reached godwit-%s in the trace", svc)
		}
	}

	find := func(name, svc string) otlptest.Span {
		t.Helper()
		for _, s := range spans {
			if s.Name == name && service(s) == svc {
				return s
			}
		}
		t.Fatalf("no span %s from %s in the trace", name, svc)
		return otlptest.Span{}
	}
	cp := find("checkout.process", "godwit-checkout")
	if cp.Attributes["checkout.step"] != checkout.StepComplete || cp.Attributes["order.id"] == nil {
		t.Errorf("checkout.process attributes: %v", cp.Attributes)
	}
	if id, _ := find("payment.process", "godwit-payment").Attributes["payment.charge_id"].(string); !strings.HasPrefix(id, "ch_") {
		t.Errorf("payment.process lacks payment.charge_id")
	}
	if id, _ := find("order.create", "godwit-order").Attributes["order.id"].(string); id != cp.Attributes["order.id"] {
		t.Errorf("order.create order.id = %q, checkout says %v", id, cp.Attributes["order.id"])
	}
	earn := find("loyalty.earn_points", "godwit-loyalty")
	loyaltyAttrs := 0
	for k := range earn.Attributes {
		if strings.HasPrefix(k, "loyalty.") {
			loyaltyAttrs++
		}
	}
	if earn.Attributes["loyalty.member_id"] != member || loyaltyAttrs < 3 {
		t.Errorf("loyalty.earn_points attributes: %v", earn.Attributes)
	}

	// The confirmation is delivered by the notify process, linked to the checkout's trace.
	recv.WaitForSpans(t, func(all []otlptest.Span) bool {
		for _, s := range all {
			if s.Name == "notify.deliver" && service(s) == "godwit-notify" {
				for _, l := range s.Links {
					if l.TraceID == traceID {
						return true
					}
				}
			}
		}
		return false
	}, 20*time.Second)
}
