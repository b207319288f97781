// Package app builds Godwit from configuration: telemetry, the database, every
// service and its routes, and the background jobs. It is the one place that
// constructs anything; cmd/godwit only turns flags into a Config and runs it.
// Wiring is plain code, read top to bottom: New (app.go) calls one builder per
// service and one local-or-remote choice per dependency (wire.go), the
// external adapters (adapters.go), and the one-shot commands' entry points
// live in commands.go.
package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/natsbus"
	"github.com/godwit-dev/godwit/internal/stripehook"
	"github.com/godwit-dev/godwit/internal/webhooks"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
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
	"github.com/godwit-dev/godwit/internal/platform/jobs"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/web"
)

// Config is what New needs. Zero values get the documented defaults.
type Config struct {
	DSN string // SQLite path or postgres:// URL
	// DBMaxConns caps this process's database connections: the PostgreSQL
	// pool, or SQLite's readers (see db.Options.MaxOpenConns); zero is
	// DefaultDBMaxConns.
	DBMaxConns int
	// SQLiteStatementSpans traces each SQLite statement (see db.Options).
	SQLiteStatementSpans bool
	// Batching tunes the database write pipeline (see db.Batching).
	Batching db.Batching
	DataDir  string // where the .eml outbox sender writes; default "godwit-data"
	Secret   []byte // token signing secret
	// LoadSecret supplies Secret when that is empty. New calls it once the
	// rest of the configuration has been checked, so a mistake there
	// leaves no newly generated secret behind.
	LoadSecret func() ([]byte, error)
	// Telemetry is the configured SDK; nil means New sets it up from
	// Observe (OTEL_* variables) and Close flushes and stops it.
	Telemetry *telemetry.Telemetry
	// Observe configures the telemetry New sets up when Telemetry is nil.
	Observe TelemetryConfig
	Now     func() time.Time // nil: time.Now

	// Program is the loyalty program; nil means ProgramFile, or the
	// built-in default when that is empty too.
	Program *program.Program
	// ProgramFile is a loyalty program YAML file, read when Program is nil.
	ProgramFile string
	// PaymentProvider charges cards; nil means the one Payment names.
	PaymentProvider payment.Provider
	// Payment chooses the payment provider when PaymentProvider is nil.
	Payment PaymentConfig
	// Sender delivers confirmations; nil means the SMTP relay SMTP names,
	// or .eml files under DataDir/mail when it names none.
	Sender notify.Sender
	// SMTP configures the relay confirmations go through when Sender is nil.
	SMTP SMTPConfig
	// ReservationTTL is how long checkout stock stays reserved; default 15 minutes.
	ReservationTTL time.Duration
	// Demo seeds the demo catalog, members and promotion into an empty
	// database and offers demo sign-in (member tokens for the demo members,
	// without credentials) to a browser on this machine; see demoSignInAllowed.
	Demo bool
	// DemoAdmin lets demo sign-in mint admin tokens too. Any program on this
	// machine (another user's, a local proxy's) can then act as admin.
	DemoAdmin bool
	// Jobs sets the background job intervals (zero: defaults).
	Jobs JobIntervals
	// Webhooks configures webhook delivery (docs/events.md).
	Webhooks WebhookConfig
	// StripeWebhook configures POST /v1/webhooks/stripe (docs/operations.md,
	// "Stripe webhooks").
	StripeWebhook StripeWebhookConfig
	// NATS, when set (nats://host:port), publishes every event to JetStream
	// (stream GODWIT_EVENTS, subjects godwit.<type>) from the process that
	// runs notify.
	NATS string

	// Services are the services this process runs (see AllServices); nil or
	// empty runs all of them. In split mode every service a running one
	// needs but this process does not run is reached over HTTP at Peers.
	Services []string
	// Peers maps a service name to the base URL of a process running it.
	Peers map[string]string
	// PeerTimeout bounds one attempt of a call to a peer; default 10s.
	PeerTimeout time.Duration
	// CheckoutLease is the lease of running work: a checkout saga and an
	// Idempotency-Key claim are renewed every third of it while they run, and
	// a crashed process's work is taken over (by the retry or the recovery
	// pass) at most this long after the crash; default
	// checkout.DefaultLease (see checkout.Config.Lease, idempotency.Options.Lease).
	CheckoutLease time.Duration
	// AuthenticationWindow is how long a checkout whose card asks for 3-D
	// Secure waits for the customer, its stock reserved and its points held,
	// before the recovery pass cancels it. It must be shorter than
	// ReservationTTL (the reservation is not extended). Zero: the default,
	// checkout.DefaultAuthenticationWindow, or two thirds of ReservationTTL
	// when that is shorter.
	AuthenticationWindow time.Duration
	// Capture is when a checkout's card payment is taken: CaptureAutomatic
	// ("" too) at checkout, or CaptureManual: authorised at checkout and
	// captured, all or less, when the order is fulfilled
	// (checkout.Config.CaptureManual). Manual capture needs every service in
	// one process; New refuses it in split mode.
	Capture string
	// RateLimits caps requests per caller (zero values: no limit).
	RateLimits httpx.RateLimits
	// Metrics says who may read /metrics and on which listener.
	Metrics MetricsConfig
	// Retention says how long abandoned carts, Idempotency-Key records and
	// failed checkouts' personal data are kept (zero: for ever).
	Retention RetentionConfig
}

// DefaultCheckoutLease is Config.CheckoutLease when zero (for the serve flag).
const DefaultCheckoutLease = checkout.DefaultLease

// WebhookConfig configures outbound webhook deliveries.
type WebhookConfig struct {
	// AllowPrivate lets deliveries reach loopback and private addresses
	// (refused by default: SSRF).
	AllowPrivate bool
	// Timeout bounds one delivery request; default 10s.
	Timeout time.Duration
}

// StripeWebhookConfig configures the Stripe webhook endpoint.
type StripeWebhookConfig struct {
	// Secrets are the endpoint's signing secrets (GODWIT_STRIPE_WEBHOOK_SECRETS,
	// comma-separated); several at once while one is rotated. None: the
	// endpoint answers 503 webhook_not_configured.
	Secrets []string
	// Tolerance is how old a delivery's signature may be; default 5 minutes.
	Tolerance time.Duration
}

// DefaultStripeWebhookTolerance is StripeWebhookConfig.Tolerance's default.
const DefaultStripeWebhookTolerance = stripehook.DefaultTolerance

// ParseStripeWebhookSecrets reads GODWIT_STRIPE_WEBHOOK_SECRETS: signing
// secrets separated by commas.
func ParseStripeWebhookSecrets(v string) []string { return stripehook.ParseSecrets(v) }

// JobIntervals sets how often each background job runs.
type JobIntervals struct {
	ReservationReaper time.Duration // default 30s
	CheckoutRecovery  time.Duration // default 30s
	Outbox            time.Duration // default 2s
	Webhooks          time.Duration // webhook fan-out and delivery; default 1s
	StripeWebhooks    time.Duration // Stripe events waiting or failed are retried; default 2s
	// The loyalty jobs run only when their interval is positive (serve sets
	// them from flags; a library user opts in).
	LoyaltyExpiry     time.Duration // points expiry
	LoyaltyHoldReaper time.Duration // voids expired points holds
	Requalification   time.Duration // tier requalification at the year's end
	LoyaltyVesting    time.Duration // vests pending points that are due
	Retention         time.Duration // default 10m; what it removes is Config.Retention
}

// App is a built Godwit process. In split mode the services it does not run
// are nil.
type App struct {
	DB      *db.DB
	Keys    *auth.Keys
	API     *httpx.API
	Handler http.Handler // the whole HTTP surface, instrumented
	// Metrics is the Prometheus scrape endpoint, behind the metrics token
	// when one is set. Handler serves it at /metrics unless Metrics.Separate.
	Metrics  http.Handler
	Loyalty  *loyalty.Service
	Catalog  *catalog.Service
	Checkout *checkout.Service
	Outbox   *notify.Worker
	Webhooks *webhooks.Service
	// StripeHook receives Stripe's webhooks; it runs with checkout.
	StripeHook *stripehook.Service
	// webhookSender delivers the simulator's settled charges to StripeHook.
	webhookSender *stripehook.Sender
	nats          *natsbus.Bus
	// Services are the services this process runs, in AllServices order.
	Services []string

	inventory *inventory.Service
	carts     *cart.Service
	idem      *idempotency.Store
	jobs      JobIntervals
	log       *slog.Logger
	tel       *telemetry.Telemetry
	now       func() time.Time

	retention RetentionConfig
	purged    metric.Int64Counter // godwit.retention.purged
	mailDir   string              // where FileSender writes; empty with SMTP (erasure.go)

	revocations *auth.Revocations // the in-memory revoked-token set, refreshed until Close
	closeTel    func()            // flushes telemetry New set up itself; nil otherwise
}

// New opens and migrates the database and builds every service and route:
// each service this process runs is built by its own builder (wire.go), and
// each dependency on another service is either that service or its client.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	topo, err := newTopology(cfg.Services, cfg.Peers)
	if err != nil {
		return nil, err
	}
	if cfg.Capture == CaptureManual && len(topo.names()) != len(AllServices) {
		// Fulfilment commits the restock, the points and the order in one
		// transaction, and the split-mode clients cannot authorise only.
		return nil, errors.New("--capture manual needs every service in one process; split mode (--services) supports only --capture automatic")
	}
	a := &App{jobs: cfg.Jobs.withDefaults(), Services: topo.names(), now: cfg.Now, retention: cfg.Retention}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if err := a.openTelemetry(ctx, cfg); err != nil {
		return nil, err
	}
	ad, err := buildAdapters(cfg, a.tel)
	if err != nil {
		return nil, err
	}
	if cfg.Secret == nil && cfg.LoadSecret != nil {
		if cfg.Secret, err = cfg.LoadSecret(); err != nil {
			return nil, err
		}
	}
	if a.Keys, err = auth.NewKeys(cfg.Secret, cfg.Now); err != nil {
		return nil, err
	}
	dbName := cfg.Observe.ServiceName // as telemetry names the process
	if dbName == "" {
		dbName = ServiceName(a.Services)
	}
	if a.DB, err = openDatabase(ctx, cfg, a.tel, dbName); err != nil {
		return nil, err
	}
	w := newWiring(a, cfg, topo)
	if fs, ok := ad.sender(cfg.DataDir).(notify.FileSender); ok {
		a.mailDir = fs.Dir // erasure removes the person's .eml files here
	}
	if err := w.build(cfg, ad); err != nil {
		return nil, err
	}
	a.Loyalty, a.Catalog, a.inventory, a.Checkout, a.Outbox = w.loyalty, w.catalog, w.inventory, w.checkout, w.outbox
	a.Webhooks, a.StripeHook, a.webhookSender = w.webhooks, w.stripeHook, w.webhookSender
	if cfg.NATS != "" && a.Webhooks != nil {
		if a.nats, err = natsbus.Connect(ctx, natsbus.Config{URL: cfg.NATS, DB: a.DB, Now: cfg.Now, TracerProvider: a.tel.TracerProvider}); err != nil {
			return nil, err
		}
	}
	a.carts, a.purged = w.carts, newPurgedCounter(a.tel.MeterProvider)
	if err := a.buildAPI(ctx, cfg, w); err != nil {
		return nil, err
	}
	if cfg.Demo {
		if err := seedDemo(ctx, w.catalog, w.loyalty); err != nil {
			return nil, fmt.Errorf("app: demo data: %w", err)
		}
	}
	a.Handler = withUI(distrustAnonymousTraces(instrument(a.API, a.tel), a.Keys), a.Keys, cfg.Demo, cfg.DemoAdmin)
	if a.webhookSender != nil {
		a.webhookSender.SetTarget(a.Handler)
	}
	return a, nil
}

// The capture modes of Config.Capture.
const (
	CaptureAutomatic = "automatic"
	CaptureManual    = "manual"
)

// withDefaults fills in the documented defaults and reads the program file.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "godwit-data"
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = DefaultPeerTimeout
	}
	if err := cfg.Metrics.check(); err != nil {
		return cfg, err
	}
	ttl := cfg.ReservationTTL
	if ttl <= 0 {
		ttl = inventory.DefaultReservationTTL
	}
	switch {
	case cfg.AuthenticationWindow < 0:
		return cfg, errors.New("--authentication-window must not be negative")
	case cfg.AuthenticationWindow == 0:
		cfg.AuthenticationWindow = min(checkout.DefaultAuthenticationWindow, ttl*2/3)
	case cfg.AuthenticationWindow >= ttl:
		// A checkout waiting for the customer keeps its reservation: one
		// that outlived it would settle on stock the reaper gave back.
		return cfg, fmt.Errorf("--authentication-window (%s) must be shorter than --reservation-ttl (%s)", cfg.AuthenticationWindow, ttl)
	}
	switch cfg.Capture {
	case "":
		cfg.Capture = CaptureAutomatic
	case CaptureAutomatic, CaptureManual:
	default:
		return cfg, fmt.Errorf("--capture %q: want %s (take the payment at checkout) or %s (authorise at checkout, capture at fulfilment)",
			cfg.Capture, CaptureAutomatic, CaptureManual)
	}
	if cfg.Program == nil {
		p, err := loadProgram(cfg.ProgramFile)
		if err != nil {
			return cfg, err
		}
		cfg.Program = p
	}
	return cfg, nil
}

// loadProgram reads a loyalty program file; "" is the built-in program.
func loadProgram(path string) (*program.Program, error) {
	if path == "" {
		return program.Default(), nil
	}
	p, err := program.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--program %s: %w", path, err)
	}
	return p, nil
}

// openTelemetry takes cfg.Telemetry, or sets telemetry up from cfg.Observe
// (named for the services this process runs) and arranges for Close to flush it.
func (a *App) openTelemetry(ctx context.Context, cfg Config) error {
	if cfg.Telemetry != nil {
		a.tel, a.log = cfg.Telemetry, cfg.Telemetry.Logger
		return nil
	}
	o := cfg.Observe
	if o.ServiceName == "" {
		o.ServiceName = ServiceName(a.Services)
	}
	tel, closeTel, err := o.setup(ctx)
	if err != nil {
		return err
	}
	a.tel, a.log, a.closeTel = tel, tel.Logger, closeTel
	return nil
}

// openDatabase opens and migrates the database, traced with tel. On
// PostgreSQL its sessions carry application_name name (the process's service
// name: godwit, godwit-inventory, godwit-expire…) unless the DSN sets one.
func openDatabase(ctx context.Context, cfg Config, tel *telemetry.Telemetry, name string) (*db.DB, error) {
	d, err := db.Open(ctx, cfg.DSN, db.Options{
		TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider,
		SQLiteStatementSpans: cfg.SQLiteStatementSpans, Batching: cfg.Batching, MaxOpenConns: cfg.DBMaxConns,
		ApplicationName: name,
	})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, d, nil); err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// Logger is the process's logger (with trace and span ids on records made
// inside a span).
func (a *App) Logger() *slog.Logger { return a.log }

// Engine names the database engine: "sqlite" or "postgres".
func (a *App) Engine() string { return string(a.DB.Engine()) }

// instrument wraps the API in otelhttp: a SERVER span and metrics per request.
// Card-like numbers are redacted from the path before otelhttp records
// url.path (the API then refuses the request), so none reaches an exporter.
//
// The request reaches here routed by the outer mux under its prefix ("/v1/"),
// which otelhttp would record as http.route on every span. The prefix is
// dropped first: the API's own mux matches the route template, which the API
// records as http.route and otelhttp then names the span after ("GET
// /v1/members/{id}"); a request no route matches has no http.route, per the
// HTTP semantic conventions.
func instrument(api http.Handler, tel *telemetry.Telemetry) http.Handler {
	return httpx.RedactCardNumbers(unrouted(otelhttp.NewHandler(api, "http.server",
		otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithMeterProvider(tel.MeterProvider),
		otelhttp.WithPropagators(tel.Propagator),
		otelhttp.WithPublicEndpointFn(untrustedTraceContext),
		// Probes and scrapes would drown real traffic in the trace view.
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
	)))
}

// unrouted passes on a copy of the request without the pattern an outer mux
// matched it by.
func unrouted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Pattern != "" {
			r = r.WithContext(r.Context())
			r.Pattern = ""
		}
		h.ServeHTTP(w, r)
	})
}

// withUI serves the embedded web UI beside the instrumented API: asset requests
// are not traced, so they do not crowd real traffic out of the trace view.
// Demo admin sign-in exists only when demoAdmin asks for it.
func withUI(api http.Handler, keys *auth.Keys, demo, demoAdmin bool) http.Handler {
	cfg := web.Config{
		Demo:            demo,
		MintMemberToken: func(id string) (string, error) { return keys.Mint(auth.ScopeMember, id, 12*time.Hour) },
	}
	if demoAdmin {
		cfg.MintAdminToken = func() (string, error) { return keys.Mint(auth.ScopeAdmin, "demo-ui", 12*time.Hour) }
	}
	ui := web.Handler(cfg)
	root := http.NewServeMux()
	for _, p := range []string{"/v1/", "/internal/", "/healthz", "/readyz", "/metrics"} {
		root.Handle(p, api)
	}
	root.Handle("/", ui)
	// Demo sign-in mints tokens without credentials: only for a browser on this
	// machine, so a demo-mode server reachable from elsewhere hands out nothing.
	root.HandleFunc("POST /ui/demo/token", func(w http.ResponseWriter, r *http.Request) {
		if err := demoSignInAllowed(r); err != nil {
			httpx.WriteError(w, r, nil, err)
			return
		}
		ui.ServeHTTP(w, r)
	})
	return root
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
	if j.Webhooks <= 0 {
		j.Webhooks = time.Second
	}
	if j.StripeWebhooks <= 0 {
		j.StripeWebhooks = 2 * time.Second
	}
	if j.Retention <= 0 {
		j.Retention = 10 * time.Minute
	}
	return j
}

// RunJobs runs the background jobs until ctx ends: the reservation reaper, the
// checkout recovery pass, outbox delivery, retention (when Config.Retention
// keeps anything for a limited time) and the loyalty jobs whose intervals
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
	if a.Webhooks != nil {
		// Each delivery has its own webhook.deliver span, a child of the
		// request that caused its event.
		every("webhook_fanout", a.jobs.Webhooks, a.Webhooks.FanoutPass, jobs.Untraced())
		every("webhook_delivery", a.jobs.Webhooks, a.Webhooks.DeliveryPass, jobs.Untraced())
	}
	if a.StripeHook != nil {
		// Each event processed has its own payment.webhook.process trace.
		every("stripe_webhook_retry", a.jobs.StripeWebhooks, a.StripeHook.RetryPass, jobs.Untraced())
	}
	if a.nats != nil {
		// Each publish has its own nats.publish span, a child of its cause.
		every("nats_publish", a.jobs.Webhooks, a.nats.PublishPass, jobs.Untraced())
	}
	if a.Loyalty != nil {
		// A non-positive interval leaves the job off.
		every("loyalty_expiry", a.jobs.LoyaltyExpiry, a.Loyalty.ExpiryPass)
		// Off unless the program sets expiry.warning_days; the same interval.
		every("loyalty_expiry_warning", a.jobs.LoyaltyExpiry, a.Loyalty.ExpiryWarningPass)
		every("loyalty_hold_reaper", a.jobs.LoyaltyHoldReaper, a.Loyalty.HoldReaperPass)
		every("loyalty_requalification", a.jobs.Requalification, a.Loyalty.RequalificationPass)
		every("loyalty_vesting", a.jobs.LoyaltyVesting, a.Loyalty.VestingPass)
	}
	if r := a.retention; r.Carts > 0 || r.IdempotencyKeys > 0 || r.FailedCheckouts > 0 {
		every("retention", a.jobs.Retention, a.RetentionPass)
	}
	wg.Wait()
}

// Close stops the revocation refresh, releases the database and, when New set
// telemetry up itself, flushes and stops it. It also tidies a half-built App.
func (a *App) Close() error {
	if a.webhookSender != nil {
		a.webhookSender.Close() // its deliveries write to the database
	}
	if a.nats != nil {
		a.nats.Close()
	}
	if a.revocations != nil {
		_ = a.revocations.Close()
	}
	// Telemetry is flushed while the database is still open: shutting the
	// meter provider down collects the metrics one last time, and the
	// observable gauges that read the database (loyalty.points_outstanding)
	// would otherwise query a closed pool and log "database is closed" on
	// every clean shutdown.
	if a.closeTel != nil {
		a.closeTel()
	}
	var err error
	if a.DB != nil {
		err = a.DB.Close()
	}
	return err
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

// ParseTrustedProxies reads --trusted-proxies: comma-separated CIDR prefixes
// or addresses of the reverse proxies whose forwarding headers name the client.
func ParseTrustedProxies(s string) (httpx.TrustedProxies, error) { return httpx.ParseTrustedProxies(s) }

// MaxWriteBatch is the most write transactions that may share one commit.
const MaxWriteBatch = db.MaxBatchSize

// Defaults returns the rate limits, write batching and retention serve starts
// with (a zero Config has no rate limits and keeps everything, and batching
// applies its own defaults).
func Defaults() Config {
	return Config{
		RateLimits: httpx.DefaultRateLimits(),
		Batching:   db.Batching{MaxSize: db.DefaultBatchSize, Writers: db.DefaultBatchWriters},
		Retention: RetentionConfig{Carts: DefaultRetainCarts, IdempotencyKeys: DefaultRetainIdempotency,
			FailedCheckouts: DefaultRetainFailedCheckouts},
	}
}
