package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// rigSecret signs every token of the hardening tests. Its raw and hex forms are
// what the secrets test looks for in telemetry.
const rigSecret = "rig-signing-secret-Zq7Xw2Lm9Pv4Tn8K"

// rig is a real app (app.New on a fresh database) behind an httptest server,
// shared by the authorisation, secrets, fault and fuzz tests.
type rig struct {
	tb  testing.TB
	a   *app.App
	srv *httptest.Server
	tel *telemetry.Telemetry
}

// rigOptions tune newRig; the zero value is SQLite, no exporters, logs discarded.
type rigOptions struct {
	engine db.Engine
	dsn    string              // overrides engine
	getenv func(string) string // OTEL_* for telemetry.Setup
	logOut io.Writer
	cfg    app.Config // DSN, Secret, Telemetry and DataDir are filled in
}

func newRig(tb testing.TB, o rigOptions) *rig {
	tb.Helper()
	ctx := context.Background()
	if o.engine == "" {
		o.engine = db.SQLite
	}
	if o.getenv == nil {
		o.getenv = func(string) string { return "" }
	}
	if o.logOut == nil {
		o.logOut = io.Discard
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: o.getenv, LogLevel: -4}, o.logOut)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := o.cfg
	cfg.DSN = o.dsn
	if cfg.DSN == "" {
		cfg.DSN = dbtest.DSN(tb, o.engine)
	}
	cfg.Secret = []byte(rigSecret)
	cfg.Telemetry = tel
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Close() })
	srv := apitest.Server(tb, a.Handler)
	tb.Cleanup(srv.Close)
	return &rig{tb: tb, a: a, srv: srv, tel: tel}
}

func (r *rig) token(s auth.Scope, sub string) string {
	r.tb.Helper()
	tok, err := r.a.Keys.Mint(s, sub, time.Hour)
	if err != nil {
		r.tb.Fatal(err)
	}
	return tok
}

// raw sends body as is; hdr may set any header (Content-Type defaults to JSON
// when there is a body).
func (r *rig) raw(method, path, token string, body []byte, hdr map[string]string) (int, []byte, http.Header) {
	r.tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, r.srv.URL+path, rd)
	if err != nil {
		r.tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := r.srv.Client().Do(req)
	if err != nil {
		r.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

// call sends body as JSON (nil: no body) and decodes a JSON object answer.
func (r *rig) call(method, path, token string, body any, hdr map[string]string) (int, map[string]any) {
	r.tb.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			r.tb.Fatal(err)
		}
	}
	code, out, _ := r.raw(method, path, token, b, hdr)
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return code, m
}

// must fails the test unless the call answered with one of the 2xx codes.
func (r *rig) must(method, path, token string, body any, hdr map[string]string) map[string]any {
	r.tb.Helper()
	code, m := r.call(method, path, token, body, hdr)
	if code < 200 || code > 299 {
		r.tb.Fatalf("%s %s = %d %v", method, path, code, m)
	}
	return m
}

// world is the data the scenario tests share: two members, points, a product,
// an open member cart and a confirmed member order.
type world struct {
	self, other   string
	selfToken     string
	otherToken    string
	serviceToken  string
	adminToken    string
	productID     string
	cartID        string // m-self's open cart, one item
	orderID       string // m-self's confirmed order
	guestCartID   string // an open guest cart, one item
	redeemOptions []string
}

var keySeq struct {
	sync.Mutex
	n int
}

// nextKey returns a process-unique Idempotency-Key. It holds no long digit
// runs, so it can never look like a card number in telemetry.
func nextKey(prefix string) string {
	keySeq.Lock()
	defer keySeq.Unlock()
	keySeq.n++
	return fmt.Sprintf("%s-%s-%d", prefix, keyRun, keySeq.n)
}

// keyRun keeps keys of separate runs (and fuzz workers) apart.
var keyRun = func() string {
	b := make([]byte, 10)
	for i := range b {
		b[i] = 'a' + byte(rand.IntN(26))
	}
	return string(b)
}()

func idem(prefix string) map[string]string {
	return map[string]string{"Idempotency-Key": nextKey(prefix)}
}

func flight(extID string, miles int) map[string]any {
	return map[string]any{
		"type": "flight", "external_id": extID, "occurred_at": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339),
		"flight": map[string]any{"distance_miles": miles, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "LAX"},
	}
}

// seedWorld needs a rig built with cfg.Demo (the demo catalog).
func seedWorld(r *rig) *world {
	r.tb.Helper()
	w := &world{self: "m-self", other: "m-other"}
	w.serviceToken = r.token(auth.ScopeService, "rig-service")
	w.adminToken = r.token(auth.ScopeAdmin, "rig-admin")
	w.selfToken = r.token(auth.ScopeMember, w.self)
	w.otherToken = r.token(auth.ScopeMember, w.other)
	r.must("POST", "/v1/members", w.serviceToken, map[string]any{"id": w.self, "name": "Self Person", "email": "self.person@example.test"}, nil)
	r.must("POST", "/v1/members", w.serviceToken, map[string]any{"id": w.other, "name": "Other Person", "email": "other.person@example.test"}, nil)
	r.must("POST", "/v1/members/"+w.self+"/activities", w.serviceToken, flight("rig-pnr-1", 6000), nil)
	r.must("POST", "/v1/members/"+w.other+"/activities", w.serviceToken, flight("rig-pnr-2", 3000), nil)

	products := r.must("GET", "/v1/products", "", nil, nil)
	list, _ := products["products"].([]any)
	if len(list) == 0 {
		r.tb.Fatal("the demo catalog is empty")
	}
	w.productID = list[0].(map[string]any)["id"].(string)

	w.orderID = r.buy(w.selfToken, w.productID, map[string]any{"payment": map[string]any{"token": "tok_visa"}, "points_to_redeem": 100})["order_id"].(string)
	w.cartID = r.cartWith(w.selfToken, w.productID)
	w.guestCartID = r.cartWith("", w.productID)
	opts := r.must("GET", "/v1/redemption-options", "", nil, nil)
	for _, o := range opts["options"].([]any) {
		w.redeemOptions = append(w.redeemOptions, o.(map[string]any)["id"].(string))
	}
	return w
}

// cartWith creates a cart (a member's with a member token) holding one product.
func (r *rig) cartWith(token, productID string) string {
	r.tb.Helper()
	c := r.must("POST", "/v1/carts", token, map[string]any{}, nil)
	id := c["id"].(string)
	r.must("POST", "/v1/carts/"+id+"/items", token, map[string]any{"product_id": productID, "quantity": 1}, nil)
	return id
}

// buy checks out a fresh cart with body's other fields and returns the answer.
func (r *rig) buy(token, productID string, body map[string]any) map[string]any {
	r.tb.Helper()
	body["cart_id"] = r.cartWith(token, productID)
	return r.must("POST", "/v1/checkout", token, body, idem("buy"))
}

// fingerprintTables are counted before and after a rejected request.
var fingerprintTables = []string{
	"loyalty_members", "loyalty_transactions", "loyalty_postings", "loyalty_lots", "loyalty_activities",
	"loyalty_pending", "loyalty_holds", "loyalty_redemptions", "loyalty_transfers", "products", "reservations", "carts", "cart_items",
	"payment_charges", "payment_refunds", "orders", "order_refunds", "outbox", "checkouts", "idempotency_keys",
}

// fingerprint counts the rows of every value-bearing table, plus the sum of
// cached balances and available stock (which change without new rows).
func fingerprint(tb testing.TB, d *db.DB) map[string]int64 {
	tb.Helper()
	out := make(map[string]int64, len(fingerprintTables)+2)
	ctx := context.Background()
	q := func(name, sql string) {
		var n int64
		if err := d.Read().QueryRowContext(ctx, sql).Scan(&n); err != nil {
			tb.Fatalf("fingerprint %s: %v", name, err)
		}
		out[name] = n
	}
	for _, t := range fingerprintTables {
		q(t, "SELECT COUNT(*) FROM "+t)
	}
	q("sum(balance)", "SELECT COALESCE(SUM(balance), 0) FROM loyalty_members")
	q("sum(held)", "SELECT COALESCE(SUM(held), 0) FROM loyalty_members")
	q("sum(available)", "SELECT COALESCE(SUM(available), 0) FROM inventory")
	q("cart_items.qty", "SELECT COALESCE(SUM(quantity), 0) FROM cart_items")
	return out
}

// diff names what changed between two fingerprints, ignoring the tables in skip.
func diff(before, after map[string]int64, skip ...string) string {
	var b strings.Builder
	for k, v := range before {
		if contains(skip, k) {
			continue
		}
		if after[k] != v {
			fmt.Fprintf(&b, "%s %d→%d; ", k, v, after[k])
		}
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// requireVerified runs every invariant check and fails on any violation.
func requireVerified(tb testing.TB, a *app.App, grace time.Duration) {
	tb.Helper()
	rep, err := a.Verify(context.Background(), grace)
	if err != nil {
		tb.Fatalf("verify: %v", err)
	}
	if !rep.OK {
		tb.Fatalf("verify: %d violation(s): %v", len(rep.Violations), rep.Violations)
	}
}
