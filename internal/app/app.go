// Package app builds Godwit from configuration: the database, every service and
// its routes, and the background jobs. Wiring is plain code, read top to bottom.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/api"
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
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/web"
)

// Config is what New needs. Zero values get the documented defaults.
type Config struct {
	DSN       string // SQLite path or postgres:// URL
	DataDir   string // where the .eml outbox sender writes; default "godwit-data"
	Secret    []byte // token signing secret
	Telemetry *telemetry.Telemetry
	Now       func() time.Time // nil: time.Now

	// Program is the loyalty program; nil means the built-in default.
	Program *program.Program
	// PaymentProvider charges cards; nil means the built-in simulator.
	PaymentProvider payment.Provider
	// Sender delivers confirmations; nil writes .eml files under DataDir/mail.
	Sender notify.Sender
	// ReservationTTL is how long checkout stock stays reserved; default 15 minutes.
	ReservationTTL time.Duration
	// Demo seeds the demo catalog, members and promotion into an empty database.
	Demo bool
	// Jobs sets the background job intervals (zero: defaults).
	Jobs JobIntervals
}

// JobIntervals sets how often each background job runs.
type JobIntervals struct {
	ReservationReaper time.Duration // default 30s
	CheckoutRecovery  time.Duration // default 30s
	Outbox            time.Duration // default 2s
	LoyaltyExpiry     time.Duration // points expiry; default 24h
	LoyaltyHoldReaper time.Duration // voids points holds past their expiry; default 1m
	Requalification   time.Duration // tier requalification; default 24h
}

// App is a built Godwit process.
type App struct {
	DB       *db.DB
	Keys     *auth.Keys
	API      *httpx.API
	Handler  http.Handler // the whole HTTP surface, instrumented
	Loyalty  *loyalty.Service
	Catalog  *catalog.Service
	Checkout *checkout.Service
	Outbox   *notify.Worker

	inventory *inventory.Service
	jobs      JobIntervals
	log       *slog.Logger
	tel       *telemetry.Telemetry
}

// New opens and migrates the database and builds every service and route.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.Telemetry == nil {
		return nil, errors.New("app: telemetry is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "godwit-data"
	}
	if cfg.Program == nil {
		cfg.Program = program.Default()
	}
	tel := cfg.Telemetry
	log := tel.Logger
	tp, mp := tel.TracerProvider, tel.MeterProvider

	keys, err := auth.NewKeys(cfg.Secret, cfg.Now)
	if err != nil {
		return nil, err
	}
	d, err := db.Open(ctx, cfg.DSN, db.Options{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()
	if err := db.Migrate(ctx, d, nil); err != nil {
		return nil, err
	}

	loy, err := loyalty.New(loyalty.Config{DB: d, Program: cfg.Program, Now: cfg.Now, TracerProvider: tp, MeterProvider: mp, Logger: log})
	if err != nil {
		return nil, err
	}
	cat := catalog.New(catalog.Config{DB: d, Now: cfg.Now, TracerProvider: tp, Logger: log})
	inv := inventory.New(inventory.Config{DB: d, Now: cfg.Now, TracerProvider: tp, Logger: log, ReservationTTL: cfg.ReservationTTL})
	carts := cart.New(cart.Config{DB: d, Catalog: cat, Now: cfg.Now, TracerProvider: tp, Logger: log})
	sim := payment.NewSimulator(payment.SimulatorConfig{DB: d, Now: cfg.Now})
	provider := cfg.PaymentProvider
	if provider == nil {
		provider = sim
	}
	pay := payment.New(payment.Config{Provider: provider, Now: cfg.Now, TracerProvider: tp, Logger: log})
	orders := order.New(order.Config{DB: d, Now: cfg.Now, TracerProvider: tp, Logger: log})
	co, err := checkout.New(checkout.Config{
		DB: d, Carts: carts, Products: cat, Inventory: inv, Payments: pay, Orders: orders,
		Loyalty: checkoutLoyalty{loy}, Program: cfg.Program,
		Now: cfg.Now, TracerProvider: tp, MeterProvider: mp, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	sender := cfg.Sender
	if sender == nil {
		sender = notify.FileSender{Dir: filepath.Join(cfg.DataDir, "mail")}
	}
	outbox := notify.NewWorker(notify.WorkerConfig{DB: d, Sender: sender, Now: cfg.Now, TracerProvider: tp, MeterProvider: mp, Logger: log})

	idem := idempotency.NewStore(d, idempotency.Options{Now: cfg.Now})
	api := httpx.NewAPI(keys, idem, log)
	a := &App{
		DB: d, Keys: keys, API: api, Loyalty: loy, Catalog: cat, Checkout: co, Outbox: outbox,
		inventory: inv, jobs: cfg.Jobs.withDefaults(), log: log, tel: tel,
	}

	api.Add(a.adminRoutes()...)
	api.Add(loy.Routes()...)
	api.Add(cat.Routes()...)
	api.Add(inv.Routes()...)
	api.Add(carts.Routes()...)
	if provider == payment.Provider(sim) {
		api.Add(sim.Routes()...) // fault injection exists only for the simulator
	}
	api.Add(orders.Routes()...)
	api.Add(co.Routes()...)
	api.Handle("GET /healthz", http.HandlerFunc(a.healthz))
	api.Handle("GET /readyz", http.HandlerFunc(a.readyz))
	api.Handle("GET /metrics", tel.MetricsHandler)

	if cfg.Demo {
		if err := seedDemo(ctx, cat, loy); err != nil {
			return nil, fmt.Errorf("app: demo data: %w", err)
		}
	}

	a.Handler = otelhttp.NewHandler(api, "http.server",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(tel.Propagator),
		// Probes and scrapes would drown real traffic in the trace view.
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
	)
	a.Handler = withUI(a.Handler, keys, cfg.Demo)
	return a, nil
}

// withUI serves the embedded web UI beside the instrumented API: asset requests
// are not traced, so they do not crowd real traffic out of the trace view.
func withUI(api http.Handler, keys *auth.Keys, demo bool) http.Handler {
	ui := web.Handler(web.Config{
		Demo:            demo,
		MintMemberToken: func(id string) (string, error) { return keys.Mint(auth.ScopeMember, id, 12*time.Hour) },
		MintAdminToken:  func() (string, error) { return keys.Mint(auth.ScopeAdmin, "demo-ui", 12*time.Hour) },
	})
	root := http.NewServeMux()
	for _, p := range []string{"/v1/", "/internal/", "/healthz", "/readyz", "/metrics"} {
		root.Handle(p, api)
	}
	root.Handle("/", ui)
	// Demo sign-in mints tokens without credentials: only for a browser on this
	// machine, so a demo-mode server reachable from elsewhere hands out nothing.
	root.HandleFunc("POST /ui/demo/token", func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			httpx.WriteError(w, r, nil, errs.Coded(errs.Forbidden, "demo_sign_in_local_only", "demo sign-in is only available from this machine; use a token"))
			return
		}
		ui.ServeHTTP(w, r)
	})
	return root
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && r.Header.Get("X-Forwarded-For") == ""
}

func (j JobIntervals) withDefaults() JobIntervals {
	if j.ReservationReaper <= 0 {
		j.ReservationReaper = 30 * time.Second
	}
	if j.CheckoutRecovery <= 0 {
		j.CheckoutRecovery = 30 * time.Second
	}
	if j.Outbox <= 0 {
		j.Outbox = 2 * time.Second
	}
	if j.LoyaltyExpiry <= 0 {
		j.LoyaltyExpiry = 24 * time.Hour
	}
	if j.LoyaltyHoldReaper <= 0 {
		j.LoyaltyHoldReaper = loyalty.DefaultHoldReaperInterval
	}
	if j.Requalification <= 0 {
		j.Requalification = 24 * time.Hour
	}
	return j
}

// RunJobs runs the background jobs until ctx ends: the reservation reaper, the
// checkout recovery pass (at once, then on its timer), outbox delivery, points
// expiry, the points-hold reaper and tier requalification. Each is safe when
// every replica runs it.
func (a *App) RunJobs(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { a.inventory.RunReaper(ctx, a.jobs.ReservationReaper) })
	wg.Go(func() { a.Checkout.RunRecovery(ctx, a.jobs.CheckoutRecovery) })
	wg.Go(func() { a.Outbox.RunWorker(ctx) })
	wg.Go(func() { a.Loyalty.RunExpiry(ctx, a.jobs.LoyaltyExpiry) })
	wg.Go(func() { a.Loyalty.RunHoldReaper(ctx, a.jobs.LoyaltyHoldReaper) })
	wg.Go(func() { a.Loyalty.RunRequalification(ctx, a.jobs.Requalification) })
	wg.Wait()
}

// Close releases the database.
func (a *App) Close() error { return a.DB.Close() }

// checkoutLoyalty adapts the loyalty service to the checkout saga's interface.
type checkoutLoyalty struct{ *loyalty.Service }

func (l checkoutLoyalty) EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (checkout.PointsEarned, error) {
	r, err := l.Service.EarnPurchase(ctx, memberID, orderID, amount)
	if err != nil {
		return checkout.PointsEarned{}, err
	}
	return checkout.PointsEarned{Points: r.TotalPointsEarned, TransactionID: r.TransactionID}, nil
}

func (a *App) healthz(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.DB.Ping(ctx); err != nil {
		a.log.WarnContext(ctx, "readiness: database unreachable", "error", err.Error())
		httpx.WriteError(w, r, nil, errs.Coded(errs.Unavailable, "database_unavailable", "the database is not reachable"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": string(a.DB.Engine())})
}

func (a *App) adminRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/admin/traces", Summary: "Recent traces held in this process's buffer", Access: auth.AdminOnly, Handler: a.listTraces},
		{Method: "GET", Pattern: "/v1/admin/traces/{trace_id}", Summary: "The spans of one recent trace", Access: auth.AdminOnly, Handler: a.getTrace},
		{Method: "GET", Pattern: "/v1/openapi.yaml", Summary: "The OpenAPI document", Access: auth.Public, Handler: serveOpenAPI},
		a.verifyRoute(),
	}
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, err := w.Write(api.OpenAPI)
	return err
}

func (a *App) getTrace(w http.ResponseWriter, r *http.Request) error {
	id, err := parseTraceID(r.PathValue("trace_id"))
	if err != nil {
		return err
	}
	view, ok := a.tel.Traces.Trace(id)
	if !ok {
		return errs.Coded(errs.NotFound, "trace_not_found", "trace %s is not in this process's recent-trace buffer", id)
	}
	httpx.WriteJSON(w, http.StatusOK, view)
	return nil
}

func (a *App) listTraces(w http.ResponseWriter, r *http.Request) error {
	f, err := recentFilter(r)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"traces": a.tel.Traces.Recent(f)})
	return nil
}

func parseTraceID(s string) (trace.TraceID, error) {
	id, err := trace.TraceIDFromHex(strings.ToLower(s))
	if err != nil {
		return id, errs.Coded(errs.Invalid, "invalid_trace_id", "trace id must be 32 hex characters").With("field", "trace_id")
	}
	return id, nil
}
