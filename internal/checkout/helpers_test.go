package checkout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// clock is an injectable, thread-safe test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeLoyalty honours the checkout.Loyalty contract in memory.
type fakeLoyalty struct {
	mu       sync.Mutex
	balance  map[string]int64
	holds    map[string]*hold // by reference
	holdByID map[string]*hold
	earned   map[string]int64 // by order
	refunded map[string]bool  // by reference
	reversed map[string]bool  // by order
}

type hold struct {
	id, member, state string
	points            int64
}

func newFakeLoyalty() *fakeLoyalty {
	return &fakeLoyalty{balance: map[string]int64{}, holds: map[string]*hold{}, holdByID: map[string]*hold{},
		earned: map[string]int64{}, refunded: map[string]bool{}, reversed: map[string]bool{}}
}

func (f *fakeLoyalty) setBalance(m string, p int64) { f.mu.Lock(); f.balance[m] = p; f.mu.Unlock() }

// Balance is the spendable balance: posted points minus pending holds.
func (f *fakeLoyalty) Balance(m string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.balance[m]
}

func (f *fakeLoyalty) pointsEarned(m string) int64 { return f.Balance(m) } // the fake credits at once

func (f *fakeLoyalty) heldPoints() (pending int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.holds {
		if h.state == "pending" {
			pending += h.points
		}
	}
	return pending
}

func (f *fakeLoyalty) HoldPoints(_ context.Context, memberID string, points int64, reference string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.holds[reference]; ok {
		return h.id, nil
	}
	if f.balance[memberID] < points {
		return "", errs.Coded(errs.Unprocessable, "insufficient_points", "not enough points").
			With("points_short", points-f.balance[memberID]).With("current_balance", f.balance[memberID])
	}
	f.balance[memberID] -= points
	h := &hold{id: fmt.Sprintf("hold_%d", len(f.holds)+1), member: memberID, points: points, state: "pending"}
	f.holds[reference], f.holdByID[h.id] = h, h
	return h.id, nil
}

func (f *fakeLoyalty) CapturePointsHold(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.holdByID[id]
	if !ok {
		return errs.Coded(errs.NotFound, "hold_not_found", "no hold")
	}
	if h.state == "voided" {
		return errs.Coded(errs.Conflict, "hold_voided", "hold voided")
	}
	h.state = "captured"
	return nil
}

func (f *fakeLoyalty) VoidPointsHold(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.holdByID[id]
	if !ok {
		return errs.Coded(errs.NotFound, "hold_not_found", "no hold")
	}
	if h.state == "captured" {
		return errs.Coded(errs.Conflict, "hold_captured", "hold captured")
	}
	if h.state == "pending" {
		f.balance[h.member] += h.points
	}
	h.state = "voided"
	return nil
}

// EarnPurchase earns one point per whole currency unit.
func (f *fakeLoyalty) EarnPurchase(_ context.Context, memberID, orderID string, amount money.Money) (checkout.PointsEarned, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.earned[orderID]; ok {
		return checkout.PointsEarned{Points: p, TransactionID: "tx_" + orderID}, nil
	}
	p := amount.Amount / 100
	f.earned[orderID] = p
	f.balance[memberID] += p
	return checkout.PointsEarned{Points: p, TransactionID: "tx_" + orderID}, nil
}

func (f *fakeLoyalty) RefundPoints(_ context.Context, memberID string, points int64, reference string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.refunded[reference] {
		f.refunded[reference] = true
		f.balance[memberID] += points
	}
	return nil
}

func (f *fakeLoyalty) ReversePurchase(_ context.Context, memberID, orderID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.reversed[orderID] {
		f.reversed[orderID] = true
		f.balance[memberID] -= f.earned[orderID]
	}
	return nil
}

// pointsBook is what the tests read and set of the points behind the saga:
// the in-memory fake, or the real loyalty service on the test database.
type pointsBook interface {
	setBalance(member string, points int64)
	Balance(member string) int64
	heldPoints() int64
	// pointsEarned is the member's spendable balance plus the points still
	// pending (a purchase's points pend for its return window).
	pointsEarned(member string) int64
}

// realLoyalty is the loyalty service on the test database, as a local
// checkout (Config.LocalTx) uses it: its writes join the saga's transactions,
// which the in-memory fake's could not.
type realLoyalty struct {
	t   testing.TB
	svc *loyalty.Service
	d   *db.DB
}

func (r *realLoyalty) ensureMember(m string) {
	r.t.Helper()
	_, err := r.svc.CreateMember(context.Background(), loyalty.NewMember{ID: m, Name: "Member " + m, Email: m + "@example.com"})
	if err != nil && !errs.Is(err, "member_exists") {
		r.t.Error(err)
	}
}

func (r *realLoyalty) setBalance(m string, p int64) {
	r.t.Helper()
	r.ensureMember(m)
	if d := p - r.Balance(m); d != 0 {
		if _, err := r.svc.Adjust(context.Background(), m, d, "test balance"); err != nil {
			r.t.Error(err)
		}
	}
}

func (r *realLoyalty) Balance(m string) int64 {
	r.t.Helper()
	mem, err := r.svc.GetMember(context.Background(), m)
	if err != nil {
		r.t.Error(err)
	}
	return mem.Balance
}

// vestAll vests every pending earning now, as the vest job would once the
// return window ends, for tests about what happens to vested points.
func (r *realLoyalty) vestAll() {
	r.t.Helper()
	if _, err := r.svc.VestBatch(context.Background(), loyalty.VestOptions{Now: time.Now().AddDate(1, 0, 0)}); err != nil {
		r.t.Error(err)
	}
}

func (r *realLoyalty) pointsEarned(m string) int64 {
	r.t.Helper()
	pending, err := r.svc.PendingPoints(context.Background(), m)
	if err != nil {
		r.t.Error(err)
	}
	return r.Balance(m) + pending
}

func (r *realLoyalty) heldPoints() int64 {
	r.t.Helper()
	var n int64
	if err := r.d.Read().QueryRowContext(context.Background(),
		`SELECT COALESCE(SUM(points), 0) FROM loyalty_holds WHERE status = 'pending'`).Scan(&n); err != nil {
		r.t.Error(err)
	}
	return n
}

// checkoutLoyalty adapts the loyalty service to checkout.Loyalty, as the app does.
type checkoutLoyalty struct{ *loyalty.Service }

func (l checkoutLoyalty) EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (checkout.PointsEarned, error) {
	r, err := l.Service.EarnPurchase(ctx, memberID, orderID, amount)
	if err != nil {
		return checkout.PointsEarned{}, err
	}
	return checkout.PointsEarned{Points: r.TotalPointsEarned, TransactionID: r.TransactionID}, nil
}

// modes are the two ways the saga runs: each service committing on its own
// (as in split mode, with the in-memory loyalty fake) and in one process with
// shared transactions (Config.LocalTx, with the real loyalty service).
var modes = []struct {
	name string
	opts fixtureOpts
}{{"per-service", fixtureOpts{}}, {"local", fixtureOpts{local: true}}}

// eachMode runs fn in both modes on both engines, each on a fresh database.
func eachMode(t *testing.T, fn func(t *testing.T, d *db.DB, o fixtureOpts)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) { fn(t, d, m.opts) })
		})
	}
}

var secret = []byte("0123456789abcdef0123456789abcdef")

type fixture struct {
	d        *db.DB
	clock    *clock
	catalog  *catalog.Service
	inv      *inventory.Service
	carts    *cart.Service
	sim      *payment.Simulator
	orders   *order.Service
	loyalty  pointsBook
	real     *realLoyalty // with the real loyalty service only
	checkout *checkout.Service
	keys     *auth.Keys
	srv      *httptest.Server

	failMu    sync.Mutex
	failAfter func(string) error
	// payDown makes every payment call fail as a split-mode client does when
	// the payment process is down.
	payDown atomic.Bool
}

// downablePayments is the payment service, or its absence: with down set,
// every call fails with peer_unavailable, as payment.Client's do when the
// payment process cannot be reached.
type downablePayments struct {
	checkout.Payments
	down *atomic.Bool
}

func (p downablePayments) unavailable() error {
	return errs.Coded(errs.Unavailable, "peer_unavailable", "the payment service is unavailable").With("peer", "payment")
}

func (p downablePayments) Charge(ctx context.Context, req payment.ChargeRequest) (payment.Charge, error) {
	if p.down.Load() {
		return payment.Charge{}, p.unavailable()
	}
	return p.Payments.Charge(ctx, req)
}

func (p downablePayments) Lookup(ctx context.Context, key string) (payment.Charge, error) {
	if p.down.Load() {
		return payment.Charge{}, p.unavailable()
	}
	return p.Payments.Lookup(ctx, key)
}

// Capture passes manual capture through to the payment service.
func (p downablePayments) Capture(ctx context.Context, id string, amount money.Money, key string) (payment.Charge, error) {
	if p.down.Load() {
		return payment.Charge{}, p.unavailable()
	}
	return p.Payments.(interface {
		Capture(context.Context, string, money.Money, string) (payment.Charge, error)
	}).Capture(ctx, id, amount, key)
}

func (p downablePayments) Void(ctx context.Context, id string) (payment.Charge, error) {
	if p.down.Load() {
		return payment.Charge{}, p.unavailable()
	}
	return p.Payments.Void(ctx, id)
}

type fixtureOpts struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
	// local runs the saga as in one process (Config.LocalTx) with the real
	// loyalty service; otherwise every service commits on its own and
	// loyalty is the in-memory fake.
	local bool
	// realLoyalty uses the real loyalty service without LocalTx.
	realLoyalty bool
	// lease is Config.Lease (0: the default).
	lease time.Duration
	// reservationTTL, when set, is the inventory's reservation TTL (default
	// 15 minutes).
	reservationTTL time.Duration
	// manual is Config.CaptureManual: authorise at checkout, capture at
	// fulfilment.
	manual bool
}

func newFixture(t testing.TB, d *db.DB, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{d: d, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	now := f.clock.Now
	var loy checkout.Loyalty
	if o.local || o.realLoyalty {
		svc, err := loyalty.New(loyalty.Config{DB: d, Program: program.Default(), Now: now, TracerProvider: o.tp})
		if err != nil {
			t.Fatal(err)
		}
		f.real = &realLoyalty{t: t, svc: svc, d: d}
		f.loyalty, loy = f.real, checkoutLoyalty{svc}
	} else {
		fake := newFakeLoyalty()
		f.loyalty, loy = fake, fake
	}
	f.catalog = catalog.New(catalog.Config{DB: d, Now: now, TracerProvider: o.tp})
	f.inv = inventory.New(inventory.Config{DB: d, Now: now, TracerProvider: o.tp, ReservationTTL: o.reservationTTL})
	f.carts = cart.New(cart.Config{DB: d, Catalog: f.catalog, Now: now, TracerProvider: o.tp})
	f.sim = payment.NewSimulator(payment.SimulatorConfig{DB: d, Now: now, SlowDelay: 20 * time.Millisecond})
	pay := payment.New(payment.Config{Provider: f.sim, Now: now, TracerProvider: o.tp})
	f.orders = order.New(order.Config{DB: d, Now: now, TracerProvider: o.tp})
	var err error
	f.checkout, err = checkout.New(checkout.Config{DB: d, Carts: f.carts, Products: f.catalog, Inventory: f.inv, Payments: downablePayments{pay, &f.payDown},
		Orders: f.orders, Loyalty: loy, LocalTx: o.local, Lease: o.lease, Now: now, CaptureManual: o.manual, TracerProvider: o.tp, MeterProvider: o.mp,
		FailAfter: func(step string) error {
			f.failMu.Lock()
			fn := f.failAfter
			f.failMu.Unlock()
			if fn == nil {
				return nil
			}
			return fn(step)
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.keys, err = auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httpx.NewAPI(f.keys, idempotency.NewStore(d, idempotency.Options{}), nil)
	api.Add(f.catalog.Routes()...)
	api.Add(f.inv.Routes()...)
	api.Add(f.carts.Routes()...)
	api.Add(f.sim.Routes()...)
	api.Add(f.orders.Routes()...)
	api.Add(f.checkout.Routes()...)
	var h http.Handler = api
	if o.tp != nil {
		// As in the server: otelhttp makes the request span, so problems carry the trace id.
		h = otelhttp.NewHandler(api, "http.server", otelhttp.WithTracerProvider(o.tp))
	}
	f.srv = apitest.Server(t, h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) setFail(fn func(string) error) {
	f.failMu.Lock()
	f.failAfter = fn
	f.failMu.Unlock()
}

func (f *fixture) product(t testing.TB, sku string, cents, stock int64) catalog.Product {
	t.Helper()
	p, err := f.catalog.Create(context.Background(), catalog.NewProduct{SKU: sku, Name: "Product " + sku, Price: money.Money{Amount: cents, Currency: "USD"}, Available: &stock})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) cart(t testing.TB, member string, items map[string]int64) string {
	t.Helper()
	ctx := context.Background()
	if f.real != nil && member != "" {
		f.real.ensureMember(member)
	}
	c, err := f.carts.Create(ctx, member)
	if err != nil {
		t.Fatal(err)
	}
	for id, q := range items {
		if _, err := f.carts.AddItem(ctx, c.ID, id, q); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID
}

func (f *fixture) token(t testing.TB, s auth.Scope, sub string) string {
	t.Helper()
	tok, err := f.keys.Mint(s, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type resp struct {
	status int
	body   map[string]any
	raw    string
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

func (f *fixture) do(t testing.TB, method, path, tok, key, body string) resp {
	t.Helper()
	r, _ := f.doHeader(t, method, path, tok, key, body)
	return r
}

// doHeader is do that also returns the response's header.
func (f *fixture) doHeader(t testing.TB, method, path, tok, key, body string) (resp, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return resp{}, nil
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Error(err)
		return resp{}, nil
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out, res.Header
}

func checkoutBody(cartID, token, email string, points int64) string {
	b, _ := json.Marshal(map[string]any{"cart_id": cartID, "payment": map[string]string{"token": token}, "points_to_redeem": points, "email": email})
	return string(b)
}

func (f *fixture) count(t testing.TB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.d.Read().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (f *fixture) available(t testing.TB, productID string) int64 {
	t.Helper()
	n, err := f.inv.Available(context.Background(), productID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// assertConsistent checks the invariants every test ends with: no charge
// without an order, no held reservation, no pending points hold, no
// unfinished checkout.
func (f *fixture) assertConsistent(t testing.TB) {
	t.Helper()
	if n := f.count(t, `SELECT COUNT(*) FROM payment_charges c WHERE c.status = 'succeeded'
		AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.charge_id = c.id)`); n != 0 {
		t.Errorf("%d succeeded charges without an order", n)
	}
	if n := f.count(t, `SELECT COUNT(*) FROM reservations WHERE state = 'held'`); n != 0 {
		t.Errorf("%d reservations still held", n)
	}
	if n := f.count(t, `SELECT COUNT(*) FROM reservations r WHERE state = 'committed'
		AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_id = r.reference)`); n != 0 {
		t.Errorf("%d committed reservations without an order", n)
	}
	if n := f.count(t, `SELECT COUNT(*) FROM checkouts WHERE state = 'in_progress'`); n != 0 {
		t.Errorf("%d checkouts in progress", n)
	}
	if p := f.loyalty.heldPoints(); p != 0 {
		t.Errorf("%d points still held", p)
	}
	problems, err := f.checkout.Verify(context.Background(), 0)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, p := range problems {
		t.Errorf("verify: %s", p)
	}
}

var _ = notify.Message{}

func catalogNew(sku string, cents int64) catalog.NewProduct {
	return catalog.NewProduct{SKU: sku, Name: "Product " + sku, Price: money.Money{Amount: cents, Currency: "USD"}}
}
