package app

import (
	"context"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/stripehook"
	"github.com/godwit-dev/godwit/internal/webhooks"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/faults"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// base is what every service builder needs: the database, the clock and
// telemetry.
type base struct {
	db  *db.DB
	now func() time.Time
	tel *telemetry.Telemetry
	log *slog.Logger
}

// wiring builds the services this process runs and chooses, for each
// dependency on another service, the local service or its HTTP client. A
// service this process does not run stays nil.
type wiring struct {
	base
	keys        *auth.Keys
	topo        topology
	peerTimeout time.Duration
	peerHC      *http.Client // made on the first peer call
	// faults holds the fault points of the services built here: each
	// registers its own, and the admin fault routes serve those.
	faults *faults.Store

	loyalty   *loyalty.Service
	catalog   *catalog.Service
	inventory *inventory.Service
	carts     *cart.Service
	payments  *payment.Service
	simulator *payment.Simulator // the built-in provider, when payment runs here without Stripe
	provider  payment.Provider   // what payments charges through
	orders    *order.Service
	checkout  *checkout.Service
	outbox    *notify.Worker
	webhooks  *webhooks.Service
	// stripeHook receives Stripe's webhooks where checkout runs.
	stripeHook *stripehook.Service
	// webhookSender sends the simulator's charges to stripeHook as Stripe
	// events, when both run here and a signing secret is configured.
	webhookSender *stripehook.Sender
}

func newWiring(a *App, cfg Config, topo topology) *wiring {
	return &wiring{
		base: base{db: a.DB, now: cfg.Now, tel: a.tel, log: a.log},
		keys: a.Keys, topo: topo, peerTimeout: cfg.PeerTimeout,
		faults: faults.NewStore(faults.Config{DB: a.DB, Now: cfg.Now}),
	}
}

// build runs the builder of each service this process runs, in dependency
// order: a service is built after the local services it uses.
func (w *wiring) build(cfg Config, ad adapters) error {
	builders := []struct {
		service string
		build   func() error
	}{
		{ServiceLoyalty, func() (err error) { w.loyalty, err = newLoyalty(w.base, cfg.Program, w.faults); return err }},
		{ServiceCatalog, func() error { w.catalog = newCatalog(w.base); return nil }},
		{ServiceInventory, func() error { w.inventory = newInventory(w.base, cfg.ReservationTTL, w.faults); return nil }},
		{ServiceCart, func() error { w.carts = newCart(w.base, w.prices(ServiceCart)); return nil }},
		{ServicePayment, func() error { w.buildPayment(ad.provider); return nil }},
		{ServiceOrder, func() error { w.orders = newOrder(w.base, w.faults); return nil }},
		{ServiceCheckout, func() (err error) {
			if w.checkout, err = w.newCheckout(cfg); err != nil {
				return err
			}
			w.stripeHook, err = w.newStripeHook(cfg)
			return err
		}},
		{ServiceNotify, func() error {
			w.outbox = newOutbox(w.base, ad.sender(cfg.DataDir))
			w.webhooks = newWebhooks(w.base, cfg.Webhooks)
			return nil
		}},
	}
	for _, b := range builders {
		if w.topo.run[b.service] {
			if err := b.build(); err != nil {
				return err
			}
		}
	}
	secrets := stripehook.ParseSecrets(strings.Join(cfg.StripeWebhook.Secrets, ","))
	if w.simulator != nil && w.stripeHook != nil && len(secrets) > 0 {
		// Simulated Stripe webhooks go to this process's own endpoint (a
		// split deployment's payment process does not serve it), signed
		// with the first secret.
		w.webhookSender = stripehook.NewSender(stripehook.SenderConfig{Secret: secrets[0], Faults: w.faults, Logger: w.log})
		w.simulator.OnSettled(w.webhookSender.Settled)
	}
	return nil
}

func newLoyalty(b base, prog *program.Program, fs *faults.Store) (*loyalty.Service, error) {
	return loyalty.New(loyalty.Config{DB: b.db, Program: prog, Now: b.now, Faults: fs, Events: events.Recorder{},
		TracerProvider: b.tel.TracerProvider, MeterProvider: b.tel.MeterProvider, Logger: b.log})
}

func newCatalog(b base) *catalog.Service {
	return catalog.New(catalog.Config{DB: b.db, Now: b.now, TracerProvider: b.tel.TracerProvider, Logger: b.log})
}

func newInventory(b base, ttl time.Duration, fs *faults.Store) *inventory.Service {
	return inventory.New(inventory.Config{DB: b.db, Now: b.now, TracerProvider: b.tel.TracerProvider, Logger: b.log,
		ReservationTTL: ttl, Faults: fs})
}

func newCart(b base, prices cart.Prices) *cart.Service {
	return cart.New(cart.Config{DB: b.db, Catalog: prices, Now: b.now, TracerProvider: b.tel.TracerProvider, Logger: b.log})
}

// buildPayment builds the payment service on provider, or on the built-in
// simulator when provider is nil. Only the simulator has fault points.
func (w *wiring) buildPayment(provider payment.Provider) {
	w.provider = provider
	if w.provider == nil {
		w.simulator = payment.NewSimulator(payment.SimulatorConfig{DB: w.db, Now: w.now, Faults: w.faults})
		w.provider = w.simulator
	}
	w.payments = payment.New(payment.Config{Provider: w.provider, Now: w.now, TracerProvider: w.tel.TracerProvider, Logger: w.log})
}

func newOrder(b base, fs *faults.Store) *order.Service {
	return order.New(order.Config{DB: b.db, Now: b.now, TracerProvider: b.tel.TracerProvider, Logger: b.log, Faults: fs, Events: events.Recorder{}})
}

// newCheckout builds the checkout saga on its six dependencies, each local or remote.
func (w *wiring) newCheckout(cfg Config) (*checkout.Service, error) {
	const caller = ServiceCheckout
	return checkout.New(checkout.Config{
		DB: w.db, Program: cfg.Program, Lease: cfg.CheckoutLease, Events: events.Recorder{}, AuthenticationWindow: cfg.AuthenticationWindow,
		Now: w.now, TracerProvider: w.tel.TracerProvider, MeterProvider: w.tel.MeterProvider, Logger: w.log,
		Carts:     w.cartsFor(caller),
		Products:  w.productsFor(caller),
		Inventory: w.inventoryFor(caller),
		Payments:  w.paymentsFor(caller),
		Orders:    w.ordersFor(caller),
		Loyalty:   w.loyaltyFor(caller),
		// In one process the saga's steps share transactions (three commits a
		// checkout); any service reached over HTTP keeps one per service.
		LocalTx:       w.carts != nil && w.inventory != nil && w.orders != nil && w.loyalty != nil,
		CaptureManual: cfg.Capture == CaptureManual,
	})
}

// newStripeHook builds the Stripe webhook endpoint on the checkout: it
// settles charges and applies refunds and disputes made at Stripe.
func (w *wiring) newStripeHook(cfg Config) (*stripehook.Service, error) {
	return stripehook.New(stripehook.Config{DB: w.db, Secrets: cfg.StripeWebhook.Secrets, Tolerance: cfg.StripeWebhook.Tolerance,
		Settler: w.checkout, Orders: w.checkout, Now: w.now, TracerProvider: w.tel.TracerProvider, MeterProvider: w.tel.MeterProvider, Logger: w.log})
}

// newWebhooks builds webhook delivery: it runs where notify runs, the
// process that delivers what the others queue.
func newWebhooks(b base, cfg WebhookConfig) *webhooks.Service {
	return webhooks.New(webhooks.Config{DB: b.db, Now: b.now, TracerProvider: b.tel.TracerProvider, MeterProvider: b.tel.MeterProvider,
		Logger: b.log, AllowPrivate: cfg.AllowPrivate, Timeout: cfg.Timeout})
}

func newOutbox(b base, sender notify.Sender) *notify.Worker {
	return notify.NewWorker(notify.WorkerConfig{DB: b.db, Sender: sender, Now: b.now,
		TracerProvider: b.tel.TracerProvider, MeterProvider: b.tel.MeterProvider, Logger: b.log})
}

// The local-or-remote choices: one per dependency a service has on another.
// Each returns the service built in this process, or else its HTTP client
// for the peer that runs it, authenticated as caller.

func (w *wiring) prices(caller string) cart.Prices {
	if w.catalog != nil {
		return w.catalog
	}
	return catalog.NewClient(w.peer(ServiceCatalog, caller))
}

func (w *wiring) productsFor(caller string) checkout.Products {
	if w.catalog != nil {
		return w.catalog
	}
	return catalog.NewClient(w.peer(ServiceCatalog, caller))
}

func (w *wiring) cartsFor(caller string) checkout.Carts {
	if w.carts != nil {
		return w.carts
	}
	return cart.NewClient(w.peer(ServiceCart, caller))
}

func (w *wiring) inventoryFor(caller string) checkout.Inventory {
	if w.inventory != nil {
		return w.inventory
	}
	return inventory.NewClient(w.peer(ServiceInventory, caller))
}

func (w *wiring) paymentsFor(caller string) checkout.Payments {
	if w.payments != nil {
		return w.payments
	}
	return payment.NewClient(w.peer(ServicePayment, caller))
}

func (w *wiring) ordersFor(caller string) checkout.Orders {
	if w.orders != nil {
		return w.orders
	}
	return order.NewClient(w.peer(ServiceOrder, caller))
}

func (w *wiring) loyaltyFor(caller string) checkoutLoyalty {
	if w.loyalty != nil {
		return checkoutLoyalty{w.loyalty}
	}
	return checkoutLoyalty{loyalty.NewClient(w.peer(ServiceLoyalty, caller))}
}

// peer returns where the peer running name listens, the HTTP client every
// peer call shares, and service tokens naming caller.
func (w *wiring) peer(name, caller string) (string, *http.Client, httpx.TokenSource) {
	if w.peerHC == nil {
		w.peerHC = peerHTTPClient(w.tel, w.peerTimeout)
	}
	return w.topo.peers[name], w.peerHC, httpx.ServiceTokens(w.keys, caller)
}

// buildAPI makes the route table: the admin and probe routes every process
// serves, and the public and internal routes of each service it runs.
func (a *App) buildAPI(ctx context.Context, cfg Config, w *wiring) error {
	idem := idempotency.NewStore(a.DB, idempotency.Options{Now: cfg.Now, Lease: cfg.CheckoutLease})
	a.idem = idem
	api := httpx.NewAPI(a.Keys, idem, a.log)
	if l := cfg.RateLimits; l.Member.PerSecond > 0 || l.Service.PerSecond > 0 || l.Anonymous.PerSecond > 0 {
		api.SetRateLimits(l)
	}
	a.API = api
	listenDSN := ""
	if db.IsPostgresDSN(cfg.DSN) {
		listenDSN = cfg.DSN
	}
	rev, err := auth.OpenRevocations(ctx, a.DB, auth.RevocationOptions{Now: cfg.Now, ListenDSN: listenDSN, Logger: a.log, MeterProvider: a.tel.MeterProvider})
	if err != nil {
		return err
	}
	a.revocations = rev
	api.SetRevocationCheck(rev.IsRevoked)
	api.Add(a.adminRoutes()...)
	api.Add(a.revokeRoute(rev))
	api.Add(w.serviceRoutes()...)
	if a.Checkout != nil && a.Loyalty != nil {
		// Verify reads both books; a split deployment runs `godwit verify --db`.
		api.Add(a.verifyRoute())
	}
	if a.Loyalty != nil {
		api.Add(a.erasureRoute())
	}
	api.Handle("GET /healthz", http.HandlerFunc(a.healthz))
	api.Handle("GET /readyz", http.HandlerFunc(a.readyz))
	a.Metrics = cfg.Metrics.guard(a.tel.MetricsHandler)
	if !cfg.Metrics.Separate {
		api.Handle("GET /metrics", a.Metrics)
	}
	return nil
}

// serviceRoutes are the public and internal routes of the services built here.
func (w *wiring) serviceRoutes() []httpx.Route {
	var rs []httpx.Route
	if w.loyalty != nil {
		rs = append(append(rs, w.loyalty.Routes()...), w.loyalty.InternalRoutes()...)
	}
	if w.catalog != nil {
		rs = append(append(rs, w.catalog.Routes()...), w.catalog.InternalRoutes()...)
	}
	if w.inventory != nil {
		rs = append(append(rs, w.inventory.Routes()...), w.inventory.InternalRoutes()...)
	}
	if w.carts != nil {
		rs = append(append(rs, w.carts.Routes()...), w.carts.InternalRoutes()...)
	}
	if w.payments != nil {
		if w.simulator != nil {
			rs = append(rs, w.simulator.Routes()...)
		}
		rs = append(rs, w.payments.InternalRoutes()...)
	}
	if w.orders != nil {
		rs = append(append(rs, w.orders.Routes()...), w.orders.InternalRoutes()...)
	}
	if w.webhooks != nil {
		rs = append(rs, w.webhooks.Routes()...)
	}
	if w.checkout != nil {
		rs = append(rs, w.checkout.Routes()...)
	}
	if w.stripeHook != nil {
		rs = append(rs, w.stripeHook.Routes()...)
	}
	if len(w.faults.Points()) > 0 {
		rs = append(rs, w.faults.Routes()...)
	}
	return rs
}

// adapters are the external systems chosen by configuration: the payment
// provider (nil: the built-in simulator) and the confirmation sender (nil:
// .eml files under the data directory).
type adapters struct {
	provider payment.Provider
	smtp     notify.Sender
}

// sender is where confirmations go: the SMTP relay, or files under dataDir.
func (ad adapters) sender(dataDir string) notify.Sender {
	if ad.smtp != nil {
		return ad.smtp
	}
	return notify.FileSender{Dir: filepath.Join(dataDir, "mail")}
}
