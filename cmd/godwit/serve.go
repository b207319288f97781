package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
)

// commonFlags are shared by every command that opens the database.
type commonFlags struct{ app.Storage }

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "godwit-data", "directory for the embedded SQLite database and the token secret")
	fs.StringVar(&c.DSN, "db", "", "database: a postgres:// URL, or a SQLite file path (default <data-dir>/godwit.db)")
	fs.StringVar(&c.Secret, "secret", "", "token signing secret, hex or at least 32 bytes (default: generated into <data-dir>/secret)")
}

// registerPool registers --db-max-conns, for the commands that hold a pool of
// database connections while they run (serve, verify, expire).
func (c *commonFlags) registerPool(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxConns, "db-max-conns", app.DefaultDBMaxConns, fmt.Sprintf("most database connections this process opens (PostgreSQL's pool; SQLite's readers, besides its one writer); at least %d. "+
		"Every process's pool counts against PostgreSQL's max_connections (default 100): see docs/operations.md, Connection budget", app.MinDBMaxConns))
}

// checkPool checks --db-max-conns, and that writers (--write-batch-writers) fit in it.
func (c *commonFlags) checkPool(writers int) error {
	return app.CheckPool(c.DatabaseDSN(), c.MaxConns, writers, func(s string) string {
		if s == "writers" {
			return "--write-batch-writers"
		}
		return "--db-max-conns"
	})
}

// serveFlags are runServe's flags beyond the common ones. Most land in the
// app.Config directly; the rest are checked or read from the environment first.
type serveFlags struct {
	cfg app.Config

	addr, logFormat, logLevel string
	shutdownTimeout           time.Duration
	pprofAddr, metricsAddr    string
	tlsCertFile, tlsKeyFile   string
	tls                       *tls.Config // nil: plain HTTP
	services                  string
	peers                     peerFlag
	demo                      optionalBool
}

// optionalBool is a boolean flag that remembers whether it was given, for a
// default that depends on other flags.
type optionalBool struct{ set, v bool }

func (b *optionalBool) IsBoolFlag() bool { return true }

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return strconv.FormatBool(b.v)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.set, b.v = true, v
	return nil
}

// or is the value given, or def when none was.
func (b optionalBool) or(def bool) bool {
	if b.set {
		return b.v
	}
	return def
}

// peerFlag collects repeatable --peer name=url values (a comma-separated list
// also works, which is how GODWIT_PEER carries several).
type peerFlag map[string]string

func (p *peerFlag) String() string {
	if p == nil || *p == nil {
		return ""
	}
	parts := make([]string, 0, len(*p))
	for _, name := range app.AllServices {
		if u, ok := (*p)[name]; ok {
			parts = append(parts, name+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

func (p *peerFlag) Set(v string) error {
	if *p == nil {
		*p = peerFlag{}
	}
	for _, one := range strings.Split(v, ",") {
		if strings.TrimSpace(one) == "" {
			continue
		}
		name, base, err := app.ParsePeer(one)
		if err != nil {
			return err
		}
		(*p)[name] = base
	}
	return nil
}

// peerMap merges --peer values with GODWIT_PEER_<NAME> variables; the flag wins.
func (f *serveFlags) peerMap(getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range app.AllServices {
		env := "GODWIT_PEER_" + strings.ToUpper(name)
		if v := strings.TrimSpace(getenv(env)); v != "" {
			_, base, err := app.ParsePeer(name + "=" + v)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", env, err)
			}
			out[name] = base
		}
	}
	for name, base := range f.peers {
		out[name] = base
	}
	return out, nil
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	c, def := &f.cfg, app.Defaults()
	fs.StringVar(&f.addr, "addr", ":8080", "HTTP listen address")
	fs.StringVar(&f.tlsCertFile, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --tls-key (default: plain HTTP, e.g. behind a TLS-terminating proxy)")
	fs.StringVar(&f.tlsKeyFile, "tls-key", "", "the PEM private key of --tls-cert")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 4*time.Second, "how long in-flight requests may take to finish on SIGINT/SIGTERM")
	fs.StringVar(&c.ProgramFile, "program", "", "loyalty program YAML file (default: the built-in program)")
	fs.Var(&f.demo, "demo", "seed the demo catalog, members and promotion into an empty database and offer demo sign-in to a browser on this machine (default: true with SQLite, false with PostgreSQL)")
	fs.BoolVar(&c.DemoAdmin, "demo-admin", false, "let demo sign-in mint admin tokens too: any program or user on this machine can then act as admin (needs --demo)")
	fs.DurationVar(&c.ReservationTTL, "reservation-ttl", 15*time.Minute, "how long checkout stock stays reserved")
	fs.DurationVar(&c.AuthenticationWindow, "authentication-window", 0, "how long a checkout whose card asks for 3-D Secure waits for the customer before it is cancelled and its stock and points released; shorter than --reservation-ttl (default 10m, or two thirds of --reservation-ttl when shorter)")
	fs.StringVar(&c.Capture, "capture", app.CaptureAutomatic, "when the card payment is taken: automatic (at checkout) or manual (authorised at checkout, captured less any cancelled lines by POST /v1/orders/{id}/fulfil; one process only)")
	f.registerAdapters(fs)
	fs.DurationVar(&c.Jobs.ReservationReaper, "reaper-interval", 30*time.Second, "how often expired stock reservations are released")
	fs.DurationVar(&c.Jobs.CheckoutRecovery, "recovery-interval", 30*time.Second, "how often interrupted checkouts are resumed or compensated")
	fs.DurationVar(&c.Jobs.Outbox, "outbox-interval", 2*time.Second, "how often queued confirmations are delivered")
	fs.DurationVar(&c.Jobs.Webhooks, "webhook-interval", time.Second, "how often new events are fanned out to webhook subscriptions and due deliveries sent")
	fs.BoolVar(&c.Webhooks.AllowPrivate, "webhook-allow-private", false, "let webhook deliveries reach loopback and private addresses (refused by default, checked on the dialled address)")
	fs.DurationVar(&c.Webhooks.Timeout, "webhook-timeout", 10*time.Second, "how long one webhook delivery request may take")
	fs.StringVar(&c.NATS, "nats", "", "publish every event to NATS JetStream at this URL (nats://host:4222; stream GODWIT_EVENTS, subjects godwit.<type>, created if absent)")
	fs.DurationVar(&c.Jobs.LoyaltyExpiry, "expiry-interval", 24*time.Hour, "how often loyalty points expiry runs (0: never)")
	fs.DurationVar(&c.Jobs.LoyaltyHoldReaper, "hold-reaper-interval", time.Minute, "how often expired points holds are voided (0: never)")
	fs.DurationVar(&c.Jobs.Requalification, "requalify-interval", 24*time.Hour, "how often tier requalification runs (0: never)")
	fs.DurationVar(&c.Jobs.LoyaltyVesting, "vesting-interval", time.Hour, "how often pending loyalty points that are due vest (0: never)")
	lim := def.RateLimits
	fs.Float64Var(&c.RateLimits.Member.PerSecond, "rate-limit-member", lim.Member.PerSecond, "requests per second allowed to each member token (0: no limit; `godwit loadgen` traffic carries a load-test pass and is exempt)")
	fs.IntVar(&c.RateLimits.Member.Burst, "rate-limit-member-burst", lim.Member.Burst, "burst allowed to each member token")
	fs.Float64Var(&c.RateLimits.Anonymous.PerSecond, "rate-limit-anonymous", lim.Anonymous.PerSecond, "requests per second allowed to each client IP without a token (0: no limit)")
	fs.IntVar(&c.RateLimits.Anonymous.Burst, "rate-limit-anonymous-burst", lim.Anonymous.Burst, "burst allowed to each client IP without a token")
	fs.Float64Var(&c.RateLimits.Service.PerSecond, "rate-limit-service", lim.Service.PerSecond, "requests per second allowed to each service or admin token (0: no limit)")
	fs.IntVar(&c.RateLimits.Service.Burst, "rate-limit-service-burst", lim.Service.Burst, "burst allowed to each service or admin token")
	fs.Func("trusted-proxies", "comma-separated CIDR prefixes of reverse proxies whose X-Forwarded-For/Forwarded headers name the client for the per-IP rate limit (default none: the TCP peer; headers ignored)", func(v string) (err error) {
		c.RateLimits.TrustedProxies, err = app.ParseTrustedProxies(v)
		return err
	})
	fs.BoolVar(&c.SQLiteStatementSpans, "trace-sqlite-statements", false, "trace every SQLite statement, not only each transaction's begin and commit (PostgreSQL statements are always traced)")
	fs.IntVar(&c.Batching.MaxSize, "write-batch-max", def.Batching.MaxSize, fmt.Sprintf("most write transactions that share one database commit (1: no batching; at most %d)", app.MaxWriteBatch))
	fs.DurationVar(&c.Batching.Linger, "write-batch-linger", 0, "how long a writer waits for a batch to fill before it begins (0: batches form from what queues while the previous one commits)")
	fs.IntVar(&c.Batching.Writers, "write-batch-writers", def.Batching.Writers, "PostgreSQL: how many batches may run at once, each on its own connection; at most half of --db-max-conns (SQLite has one writer)")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go profiles (net/http/pprof) on this separate address, e.g. 127.0.0.1:6060 (default off)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics on this separate address instead of the API's, e.g. 127.0.0.1:9464 or a private network's (default: on the API listener)")
	fs.StringVar(&c.Metrics.Token, "metrics-token", "", fmt.Sprintf("require this bearer token (at least %d characters) on /metrics; prefer GODWIT_METRICS_TOKEN, a flag shows in ps (default: none)", app.MinMetricsTokenLen))
	fs.StringVar(&f.services, "services", "all", "services this process runs: all, or a comma-separated subset of "+strings.Join(app.AllServices, ","))
	fs.Var(&f.peers, "peer", "where a service this process needs but does not run listens: name=url (repeatable; or GODWIT_PEER_<NAME>=url)")
	fs.DurationVar(&c.PeerTimeout, "peer-timeout", app.DefaultPeerTimeout, "how long one call to a peer service may take")
	fs.DurationVar(&c.CheckoutLease, "checkout-lease", app.DefaultCheckoutLease, "lease of a running checkout and Idempotency-Key claim, renewed every third of it while it runs: a crashed process's work is taken over this long after the crash")
	f.registerRetention(fs)
}

// registerAdapters registers the flags of the external systems: payments and mail.
func (f *serveFlags) registerAdapters(fs *flag.FlagSet) {
	p, m := &f.cfg.Payment, &f.cfg.SMTP
	fs.StringVar(&p.Provider, "payment", "simulator", "payment provider: simulator or stripe")
	fs.StringVar(&p.StripeKeyFile, "stripe-secret-key-file", "", "file holding the Stripe secret key (or set GODWIT_STRIPE_SECRET_KEY)")
	fs.StringVar(&p.StripeAPIBase, "stripe-api-base", "", "Stripe API base URL (default Stripe's; e.g. http://127.0.0.1:12111 for stripe-mock)")
	fs.DurationVar(&f.cfg.StripeWebhook.Tolerance, "stripe-webhook-tolerance", app.DefaultStripeWebhookTolerance, "how old a Stripe webhook's signature timestamp may be (signing secrets: GODWIT_STRIPE_WEBHOOK_SECRETS, comma-separated)")
	fs.DurationVar(&f.cfg.Jobs.StripeWebhooks, "stripe-webhook-retry-interval", 2*time.Second, "how often Stripe webhook events waiting for their checkout, or failed, are retried")
	fs.StringVar(&p.StripeReturnURL, "stripe-return-url", "", "where Stripe sends the customer back after 3-D Secure (the PaymentIntent's return_url), e.g. https://shop.example/checkout-return; with it the 202's next_action is a redirect_to_url")
	fs.StringVar(&m.Addr, "smtp-addr", "", "SMTP relay host:port for confirmations (default: write .eml files under <data-dir>/mail)")
	fs.StringVar(&m.TLS, "smtp-tls", "starttls", "SMTP transport security: starttls, tls or none")
	fs.StringVar(&m.Username, "smtp-username", "", "SMTP username (optional)")
	fs.StringVar(&m.PasswordFile, "smtp-password-file", "", "file holding the SMTP password (or set GODWIT_SMTP_PASSWORD)")
	fs.StringVar(&m.From, "smtp-from", "Godwit <orders@godwit.local>", "From address of confirmations")
	fs.StringVar(&m.HELO, "smtp-helo", "", "host name sent in HELO/EHLO (default: this machine's)")
}

// config completes the app.Config from the checked flags and the environment.
func (f *serveFlags) config(e env, common commonFlags) (app.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return app.Config{}, fmt.Errorf("--log-level: %w", err)
	}
	if f.logFormat != "json" && f.logFormat != "text" {
		return app.Config{}, fmt.Errorf("--log-format must be json or text, not %q", f.logFormat)
	}
	services, err := app.ParseServices(f.services)
	if err != nil {
		return app.Config{}, fmt.Errorf("--services: %w", err)
	}
	peers, err := f.peerMap(e.getenv)
	if err != nil {
		return app.Config{}, err
	}
	if f.tls, err = loadTLS(f.tlsCertFile, f.tlsKeyFile); err != nil {
		return app.Config{}, err
	}
	if f.cfg.PeerTimeout <= 0 {
		return app.Config{}, errors.New("--peer-timeout must be positive")
	}
	if err := common.checkPool(f.cfg.Batching.Writers); err != nil {
		return app.Config{}, err
	}
	cfg := f.cfg
	cfg.DSN, cfg.DataDir, cfg.DBMaxConns = common.DatabaseDSN(), common.DataDir, common.MaxConns
	cfg.Services, cfg.Peers = services, peers
	cfg.Metrics.Separate = f.metricsAddr != ""
	cfg.Demo = f.demo.or(app.DemoByDefault(cfg.DSN))
	if cfg.DemoAdmin && !cfg.Demo {
		return app.Config{}, errors.New("--demo-admin needs demo mode (--demo)")
	}
	cfg.Payment.StripeSecretKey = e.getenv("GODWIT_STRIPE_SECRET_KEY")
	cfg.StripeWebhook.Secrets = app.ParseStripeWebhookSecrets(e.getenv("GODWIT_STRIPE_WEBHOOK_SECRETS"))
	cfg.SMTP.Password = e.getenv("GODWIT_SMTP_PASSWORD")
	cfg.Observe = app.TelemetryConfig{ServiceVersion: version(), LogFormat: f.logFormat, LogLevel: level, LogOutput: e.stderr, Getenv: e.getenv}
	return cfg, nil
}

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]")
	var (
		common commonFlags
		f      serveFlags
	)
	common.register(fs)
	common.registerPool(fs)
	f.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	cfg, err := f.config(e, common)
	if err != nil {
		return err
	}
	var created bool
	cfg.LoadSecret = func() (secret []byte, err error) {
		secret, created, err = common.LoadSecret()
		return secret, err
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if created {
		if err := printFirstAdminToken(e, common, a); err != nil {
			return err
		}
	}
	stopAside, err := f.serveAside(a)
	if err != nil {
		return err
	}
	defer stopAside()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.addr, err)
	}
	if msg := metricsExposure(ln.Addr(), f.metricsAddr, cfg.Metrics.Token); msg != "" {
		a.Logger().Warn(msg, "addr", ln.Addr().String())
	}
	defer startJobs(ctx, a)()
	a.Logger().Info("godwit serving", "addr", ln.Addr().String(), "database", a.Engine(), "payment", cfg.Payment.Provider, "version", version(),
		"services", strings.Join(a.Services, ","), "peers", f.peerMapString(cfg.Peers))
	scheme := "http"
	if f.tls != nil {
		scheme = "https"
	}
	fmt.Fprintf(e.stdout, "Godwit listening on %s://%s (database: %s)\n", scheme, displayAddr(ln.Addr()), a.Engine())
	return serveHTTP(ctx, a, ln, f.shutdownTimeout, f.tls)
}

// printFirstAdminToken shows the secret generated on first start and an admin
// token signed with it, so a new installation can be used at once.
func printFirstAdminToken(e env, common commonFlags, a *app.App) error {
	tok, err := a.Minter().Mint("admin", "admin", 30*24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Generated a token signing secret in %s (keep it private; share it between replicas).\n", common.SecretPath())
	fmt.Fprintf(e.stdout, "Admin token (30 days; mint more with 'godwit token admin <name>'):\n%s\n", tok)
	return nil
}

// startJobs runs the background jobs until the returned stop is called. They
// outlive ctx: serving stops first, then the jobs.
func startJobs(ctx context.Context, a *app.App) (stop func()) {
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.RunJobs(jobsCtx)
	}()
	return func() {
		stopJobs()
		<-done
	}
}

// loadTLS reads --tls-cert and --tls-key: both or neither. The pair is read
// once, at start (a renewed certificate takes a restart, which replicas
// behind a load balancer do one at a time).
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key (GODWIT_TLS_CERT, GODWIT_TLS_KEY) go together: give both files for HTTPS, or neither for plain HTTP")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serveHTTP serves a's handler on ln until ctx ends, then lets in-flight
// requests finish for up to shutdownTimeout. With tlsCfg it serves HTTPS
// (HTTP/2 included) on ln instead.
func serveHTTP(ctx context.Context, a *app.App, ln net.Listener, shutdownTimeout time.Duration, tlsCfg *tls.Config) error {
	log := a.Logger()
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsCfg,
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func displayAddr(a net.Addr) string {
	s := a.String()
	if strings.HasPrefix(s, "[::]:") {
		return "localhost:" + strings.TrimPrefix(s, "[::]:")
	}
	if strings.HasPrefix(s, "0.0.0.0:") {
		return "localhost:" + strings.TrimPrefix(s, "0.0.0.0:")
	}
	return s
}

func (f *serveFlags) peerMapString(peers map[string]string) string {
	p := peerFlag(peers)
	return p.String()
}

// serveAside starts the listeners beside the API: profiles (--pprof-addr) and
// metrics (--metrics-addr). stop closes them.
func (f *serveFlags) serveAside(a *app.App) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	if f.pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		s, err := serveSide("pprof", f.pprofAddr, mux, a.Logger())
		if err != nil {
			return stop, err
		}
		stops = append(stops, s)
	}
	if f.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics)
		s, err := serveSide("metrics", f.metricsAddr, mux, a.Logger())
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, s)
	}
	return stop, nil
}

// serveSide serves h on a listener of its own, away from the API, so that it
// can be bound to loopback or a private network while the API is public.
func serveSide(name, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s-addr %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn(name+" server stopped", "error", err.Error())
		}
	}()
	log.Info(name+" serving", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// metricsExposure warns when /metrics is open to whoever reaches a
// non-loopback API listener: no token and no listener of its own.
func metricsExposure(api net.Addr, metricsAddr, token string) string {
	if metricsAddr != "" || token != "" {
		return ""
	}
	if a, ok := api.(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return ""
	}
	return "/metrics is open to anyone who can reach this address: set --metrics-addr (a private listener) or --metrics-token (docs/security.md)"
}

// registerRetention registers the retention job's flags (docs/security.md).
func (f *serveFlags) registerRetention(fs *flag.FlagSet) {
	r, def := &f.cfg.Retention, app.Defaults().Retention
	fs.DurationVar(&r.Carts, "retain-carts", def.Carts, "delete carts unchanged this long, unless a checkout in progress holds them (0: keep for ever)")
	fs.DurationVar(&r.IdempotencyKeys, "retain-idempotency", def.IdempotencyKeys, "delete Idempotency-Key records this old; a retry after that runs afresh (0: keep for ever)")
	fs.DurationVar(&r.FailedCheckouts, "retain-failed-checkouts", def.FailedCheckouts, "clear the email of failed checkouts unchanged this long; the row stays (0: keep for ever)")
	fs.DurationVar(&f.cfg.Jobs.Retention, "retention-interval", 10*time.Minute, "how often the retention job runs")
}
