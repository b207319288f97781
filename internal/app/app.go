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
	"github.com/godwit-dev/godwit/internal/platform/faults"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
	"github.com/godwit-dev/godwit/internal/platform/jobs"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/web"
)

// Config is what New needs. Zero values get the documented defaults.
type Config struct {
	DSN string // SQLite path or postgres:// URL
	// SQLiteStatementSpans traces each SQLite statement (see db.Options).
	SQLiteStatementSpans bool
	// Batching tunes the database write pipeline (see db.Batching).
	Batching  db.Batching
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

	// Services are the services this process runs (see AllServices); nil or
	// empty runs all of them. In split mode every service a running one
	// needs but this process does not run is reached over HTTP at Peers.
	Services []string
	// Peers maps a service name to the base URL of a process running it.
	Peers map[string]string
	// PeerTimeout bounds one attempt of a call to a peer; default 10s.
	PeerTimeout time.Duration
	// CheckoutLease is how long a running checkout is protected from the
	// recovery pass; default 2 minutes (see checkout.Config.Lease).
	CheckoutLease time.Duration
	// RateLimits caps requests per caller (zero values: no limit).
	RateLimits httpx.RateLimits
}

// JobIntervals sets how often each background job runs.
type JobIntervals struct {
	ReservationReaper time.Duration // default 30s
	CheckoutRecovery  time.Duration // default 30s
	Outbox            time.Duration // default 2s
	// The loyalty jobs run only when their interval is positive (serve sets
	// them from flags; a library user opts in).
	LoyaltyExpiry     time.Duration // points expiry
	LoyaltyHoldReaper time.Duration // voids expired points holds
	Requalification   time.Duration // tier requalification at the year's end
}

// App is a built Godwit process. In split mode the services it does not run
// are nil.
type App struct {
	DB       *db.DB
	Keys     *auth.Keys
	API      *httpx.API
	Handler  http.Handler // the whole HTTP surface, instrumented
	Loyalty  *loyalty.Service
	Catalog  *catalog.Service
	Checkout *checkout.Service
	Outbox   *notify.Worker
	// Services are the services this process runs, in AllServices order.
	Services []string

	inventory *inventory.Service
	jobs      JobIntervals
	log       *slog.Logger
	tel       *telemetry.Telemetry

	revocations *auth.Revocations // the in-memory revoked-token set, refreshed until Close
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
	d, err := db.Open(ctx, cfg.DSN, db.Options{TracerProvider: tp, MeterProvider: mp, SQLiteStatementSpans: cfg.SQLiteStatementSpans, Batching: cfg.Batching})
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

	topo, err := newTopology(cfg.Services, cfg.Peers)
	if err != nil {
		return nil, err
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = DefaultPeerTimeout
	}
	var peerHC *http.Client
	// client returns the HTTP client for peer name, authenticated as caller.
	client := func(caller string) (*http.Client, httpx.TokenSource) {
		if peerHC == nil {
			peerHC = peerHTTPClient(tel, cfg.PeerTimeout)
		}
		return peerHC, httpx.ServiceTokens(keys, caller)
	}

	a := &App{DB: d, Keys: keys, jobs: cfg.Jobs.withDefaults(), log: log, tel: tel}
	for _, name := range AllServices {
		if topo.run[name] {
			a.Services = append(a.Services, name)
		}
	}
	// One fault store: each service registers its fault points with it, and
	// the admin fault routes serve the points of the services run here.
	faultPoints := faults.NewStore(faults.Config{DB: d, Now: cfg.Now})
	var (
		loy    *loyalty.Service
		cat    *catalog.Service
		carts  *cart.Service
		pay    *payment.Service
		orders *order.Service
		sim    *payment.Simulator
	)
	if topo.run[ServiceLoyalty] {
		if loy, err = loyalty.New(loyalty.Config{DB: d, Program: cfg.Program, Now: cfg.Now, TracerProvider: tp, MeterProvider: mp, Logger: log, Faults: faultPoints}); err != nil {
			return nil, err
		}
	}
	if topo.run[ServiceCatalog] {
		cat = catalog.New(catalog.Config{DB: d, Now: cfg.Now, TracerProvider: tp, Logger: log})
	}
	if topo.run[ServiceInventory] {
		a.inventory = inventory.New(inventory.Config{DB: d, Now: cfg.Now, TracerProvider: tp, Logger: log, ReservationTTL: cfg.ReservationTTL, Faults: faultPoints})
	}
	if topo.run[ServiceCart] {
		var prices cart.Prices = cat
		if cat == nil {
			hc, tokens := client(ServiceCart)
			prices = catalog.NewClient(topo.peers[ServiceCatalog], hc, tokens)
		}
		carts = cart.New(cart.Config{DB: d, Catalog: prices, Now: cfg.Now, TracerProvider: tp, Logger: log})
	}
	provider := cfg.PaymentProvider
	if topo.run[ServicePayment] {
		if provider == nil {
			// Fault injection exists only for the simulator.
			sim = payment.NewSimulator(payment.SimulatorConfig{DB: d, Now: cfg.Now, Faults: faultPoints})
			provider = sim
		}
		pay = payment.New(payment.Config{Provider: provider, Now: cfg.Now, TracerProvider: tp, Logger: log})
	}
	if topo.run[ServiceOrder] {
		orders = order.New(order.Config{DB: d, Now: cfg.Now, TracerProvider: tp, Logger: log})
	}
	if topo.run[ServiceCheckout] {
		deps := checkout.Config{
			DB: d, Program: cfg.Program, Lease: cfg.CheckoutLease,
			Now: cfg.Now, TracerProvider: tp, MeterProvider: mp, Logger: log,
		}
		peer := func(name string) (string, *http.Client, httpx.TokenSource) {
			hc, tokens := client(ServiceCheckout)
			return topo.peers[name], hc, tokens
		}
		if carts != nil {
			deps.Carts = carts
		} else {
			deps.Carts = cart.NewClient(peer(ServiceCart))
		}
		if cat != nil {
			deps.Products = cat
		} else {
			deps.Products = catalog.NewClient(peer(ServiceCatalog))
		}
		if a.inventory != nil {
			deps.Inventory = a.inventory
		} else {
			deps.Inventory = inventory.NewClient(peer(ServiceInventory))
		}
		if pay != nil {
			deps.Payments = pay
		} else {
			deps.Payments = payment.NewClient(peer(ServicePayment))
		}
		if orders != nil {
			deps.Orders = orders
		} else {
			deps.Orders = order.NewClient(peer(ServiceOrder))
		}
		if loy != nil {
			deps.Loyalty = checkoutLoyalty{loy}
		} else {
			deps.Loyalty = checkoutLoyalty{loyalty.NewClient(peer(ServiceLoyalty))}
		}
		// In one process the saga's steps share transactions (three commits a
		// checkout); any service reached over HTTP keeps one per service.
		deps.LocalTx = carts != nil && a.inventory != nil && orders != nil && loy != nil
		if a.Checkout, err = checkout.New(deps); err != nil {
			return nil, err
		}
	}
	if topo.run[ServiceNotify] {
		sender := cfg.Sender
		if sender == nil {
			sender = notify.FileSender{Dir: filepath.Join(cfg.DataDir, "mail")}
		}
		a.Outbox = notify.NewWorker(notify.WorkerConfig{DB: d, Sender: sender, Now: cfg.Now, TracerProvider: tp, MeterProvider: mp, Logger: log})
	}
	a.Loyalty, a.Catalog = loy, cat

	idem := idempotency.NewStore(d, idempotency.Options{Now: cfg.Now})
	api := httpx.NewAPI(keys, idem, log)
	if l := cfg.RateLimits; l.Member.PerSecond > 0 || l.Service.PerSecond > 0 || l.Anonymous.PerSecond > 0 {
		api.SetRateLimits(l)
	}
	a.API = api

	listenDSN := ""
	if db.IsPostgresDSN(cfg.DSN) {
		listenDSN = cfg.DSN
	}
	revocations, err := auth.OpenRevocations(ctx, d, auth.RevocationOptions{Now: cfg.Now, ListenDSN: listenDSN, Logger: log, MeterProvider: mp})
	if err != nil {
		return nil, err
	}
	a.revocations = revocations
	api.SetRevocationCheck(revocations.IsRevoked)
	api.Add(a.adminRoutes()...)
	api.Add(a.revokeRoute(revocations))
	if loy != nil {
		api.Add(loy.Routes()...)
		api.Add(loy.InternalRoutes()...)
	}
	if cat != nil {
		api.Add(cat.Routes()...)
		api.Add(cat.InternalRoutes()...)
	}
	if a.inventory != nil {
		api.Add(a.inventory.Routes()...)
		api.Add(a.inventory.InternalRoutes()...)
	}
	if carts != nil {
		api.Add(carts.Routes()...)
		api.Add(carts.InternalRoutes()...)
	}
	if pay != nil {
		if sim != nil {
			api.Add(sim.Routes()...)
		}
		api.Add(pay.InternalRoutes()...)
	}
	if orders != nil {
		api.Add(orders.Routes()...)
		api.Add(orders.InternalRoutes()...)
	}
	if a.Checkout != nil {
		api.Add(a.Checkout.Routes()...)
	}
	if len(faultPoints.Points()) > 0 {
		api.Add(faultPoints.Routes()...)
	}
	if a.Checkout != nil && a.Loyalty != nil {
		// Verify reads both books; a split deployment runs `godwit verify --db`.
		api.Add(a.verifyRoute())
	}
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
	return j
}

// RunJobs runs the background jobs until ctx ends: the reservation reaper, the
// checkout recovery pass, outbox delivery and the loyalty jobs whose intervals
// are set. Each runs on a jobs.Runner (jitter, panics recovered, a metric and,
// but for outbox delivery, a span per pass) and is safe when every replica
// runs it.
//
// In split mode a job runs only in the process that runs its service: the
// reaper with inventory, recovery with checkout, outbox delivery with notify,
// and the loyalty jobs with loyalty.
func (a *App) RunJobs(ctx context.Context) {
	r := jobs.New(jobs.Config{TracerProvider: a.tel.TracerProvider, MeterProvider: a.tel.MeterProvider, Logger: a.log})
	var wg sync.WaitGroup
	every := func(name string, interval time.Duration, pass func(context.Context) error, opts ...jobs.Option) {
		wg.Go(func() { r.Every(ctx, name, interval, pass, opts...) })
	}
	if a.inventory != nil {
		every("reservation_reaper", a.jobs.ReservationReaper, a.inventory.ReaperPass)
	}
	if a.Checkout != nil {
		every("checkout_recovery", a.jobs.CheckoutRecovery, a.Checkout.RecoveryPass)
	}
	if a.Outbox != nil {
		// Every 2 s: a trace per pass would crowd the recent-trace buffer;
		// each delivery has its own notify.deliver trace.
		every("outbox_delivery", a.jobs.Outbox, a.Outbox.DeliveryPass, jobs.Untraced())
	}
	if a.Loyalty != nil {
		// A non-positive interval leaves the job off.
		every("loyalty_expiry", a.jobs.LoyaltyExpiry, a.Loyalty.ExpiryPass)
		every("loyalty_hold_reaper", a.jobs.LoyaltyHoldReaper, a.Loyalty.HoldReaperPass)
		every("loyalty_requalification", a.jobs.Requalification, a.Loyalty.RequalificationPass)
	}
	wg.Wait()
}

// Close stops the revocation refresh and releases the database.
func (a *App) Close() error {
	if a.revocations != nil {
		_ = a.revocations.Close()
	}
	return a.DB.Close()
}

// loyaltyPort is what checkout uses of loyalty, satisfied by the in-process
// service and by its HTTP client alike.
type loyaltyPort interface {
	HoldPoints(ctx context.Context, memberID string, points int64, reference string) (string, error)
	CapturePointsHold(ctx context.Context, holdID string) error
	VoidPointsHold(ctx context.Context, holdID string) error
	EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (loyalty.EarnResult, error)
	RefundPoints(ctx context.Context, memberID string, points int64, reference string) error
	ReversePurchase(ctx context.Context, memberID, orderID string) error
}

// checkoutLoyalty adapts the loyalty service (or client) to the checkout
// saga's interface; it also implements checkout.PurchaseReverser.
type checkoutLoyalty struct{ loyaltyPort }

var (
	_ checkout.Loyalty          = checkoutLoyalty{}
	_ checkout.PurchaseReverser = checkoutLoyalty{}
	_ loyaltyPort               = (*loyalty.Service)(nil)
	_ loyaltyPort               = (*loyalty.Client)(nil)
	_ checkout.Carts            = (*cart.Client)(nil)
	_ checkout.Products         = (*catalog.Client)(nil)
	_ cart.Prices               = (*catalog.Client)(nil)
	_ checkout.Inventory        = (*inventory.Client)(nil)
	_ checkout.Payments         = (*payment.Client)(nil)
	_ checkout.Orders           = (*order.Client)(nil)
)

func (l checkoutLoyalty) EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (checkout.PointsEarned, error) {
	r, err := l.loyaltyPort.EarnPurchase(ctx, memberID, orderID, amount)
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
	if a.revocations != nil {
		if err := a.revocations.Healthy(); err != nil {
			httpx.WriteError(w, r, a.log, err)
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": string(a.DB.Engine())})
}

func (a *App) adminRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/admin/traces", Summary: "Recent traces held in this process's buffer", Access: auth.AdminOnly, Handler: a.listTraces},
		{Method: "GET", Pattern: "/v1/admin/traces/{trace_id}", Summary: "The spans of one recent trace", Access: auth.AdminOnly, Handler: a.getTrace},
		{Method: "GET", Pattern: "/v1/openapi.yaml", Summary: "The OpenAPI document", Access: auth.Public, Handler: serveOpenAPI},
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
