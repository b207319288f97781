package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/notify/smtp"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/payment/stripe"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// commonFlags are shared by every command that opens the database.
type commonFlags struct {
	dataDir string
	dsn     string
	secret  string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data-dir", "godwit-data", "directory for the embedded SQLite database and the token secret")
	fs.StringVar(&c.dsn, "db", "", "database: a postgres:// URL, or a SQLite file path (default <data-dir>/godwit.db)")
	fs.StringVar(&c.secret, "secret", "", "token signing secret, hex or at least 32 bytes (default: generated into <data-dir>/secret)")
}

func (c *commonFlags) databaseDSN() string {
	if c.dsn != "" {
		return c.dsn
	}
	return filepath.Join(c.dataDir, "godwit.db")
}

func (c *commonFlags) secretPath() string { return filepath.Join(c.dataDir, "secret") }

// loadSecret returns the signing secret and whether it was generated just now.
func (c *commonFlags) loadSecret() ([]byte, bool, error) {
	if c.secret != "" {
		s, err := auth.DecodeSecret(c.secret)
		return s, false, err
	}
	return auth.LoadOrCreateSecret(c.secretPath())
}

// serveFlags are runServe's flags beyond the common ones.
type serveFlags struct {
	addr, logFormat, logLevel string
	shutdownTimeout           time.Duration
	programFile               string
	demo                      bool
	reservationTTL            time.Duration

	paymentProvider   string
	stripeKeyFile     string
	stripeAPIBase     string
	smtpAddr, smtpTLS string
	smtpUsername      string
	smtpPasswordFile  string
	smtpFrom          string
	smtpHELO          string

	jobs      app.JobIntervals
	limits    httpx.RateLimits
	pprofAddr string
	sqlSpans  bool
	batching  db.Batching

	services      string
	peers         peerFlag
	peerTimeout   time.Duration
	checkoutLease time.Duration
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
	fs.StringVar(&f.addr, "addr", ":8080", "HTTP listen address")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 4*time.Second, "how long in-flight requests may take to finish on SIGINT/SIGTERM")
	fs.StringVar(&f.programFile, "program", "", "loyalty program YAML file (default: the built-in program)")
	fs.BoolVar(&f.demo, "demo", true, "seed the demo catalog, members and promotion into an empty database")
	fs.DurationVar(&f.reservationTTL, "reservation-ttl", 15*time.Minute, "how long checkout stock stays reserved")
	fs.StringVar(&f.paymentProvider, "payment", "simulator", "payment provider: simulator or stripe")
	fs.StringVar(&f.stripeKeyFile, "stripe-secret-key-file", "", "file holding the Stripe secret key (or set GODWIT_STRIPE_SECRET_KEY)")
	fs.StringVar(&f.stripeAPIBase, "stripe-api-base", "", "Stripe API base URL (default Stripe's; e.g. http://127.0.0.1:12111 for stripe-mock)")
	fs.StringVar(&f.smtpAddr, "smtp-addr", "", "SMTP relay host:port for confirmations (default: write .eml files under <data-dir>/mail)")
	fs.StringVar(&f.smtpTLS, "smtp-tls", "starttls", "SMTP transport security: starttls, tls or none")
	fs.StringVar(&f.smtpUsername, "smtp-username", "", "SMTP username (optional)")
	fs.StringVar(&f.smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP password (or set GODWIT_SMTP_PASSWORD)")
	fs.StringVar(&f.smtpFrom, "smtp-from", "Godwit <orders@godwit.local>", "From address of confirmations")
	fs.StringVar(&f.smtpHELO, "smtp-helo", "", "host name sent in HELO/EHLO (default: this machine's)")
	fs.DurationVar(&f.jobs.ReservationReaper, "reaper-interval", 30*time.Second, "how often expired stock reservations are released")
	fs.DurationVar(&f.jobs.CheckoutRecovery, "recovery-interval", 30*time.Second, "how often interrupted checkouts are resumed or compensated")
	fs.DurationVar(&f.jobs.Outbox, "outbox-interval", 2*time.Second, "how often queued confirmations are delivered")
	fs.DurationVar(&f.jobs.LoyaltyExpiry, "expiry-interval", 24*time.Hour, "how often loyalty points expiry runs (0: never)")
	fs.DurationVar(&f.jobs.LoyaltyHoldReaper, "hold-reaper-interval", time.Minute, "how often expired points holds are voided (0: never)")
	fs.DurationVar(&f.jobs.Requalification, "requalify-interval", 24*time.Hour, "how often tier requalification runs (0: never)")
	lim := httpx.DefaultRateLimits()
	fs.Float64Var(&f.limits.Member.PerSecond, "rate-limit-member", lim.Member.PerSecond, "requests per second allowed to each member token (0: no limit; `godwit loadgen` traffic carries a load-test pass and is exempt)")
	fs.IntVar(&f.limits.Member.Burst, "rate-limit-member-burst", lim.Member.Burst, "burst allowed to each member token")
	fs.Float64Var(&f.limits.Anonymous.PerSecond, "rate-limit-anonymous", lim.Anonymous.PerSecond, "requests per second allowed to each client IP without a token (0: no limit)")
	fs.IntVar(&f.limits.Anonymous.Burst, "rate-limit-anonymous-burst", lim.Anonymous.Burst, "burst allowed to each client IP without a token")
	fs.Float64Var(&f.limits.Service.PerSecond, "rate-limit-service", lim.Service.PerSecond, "requests per second allowed to each service or admin token (0: no limit)")
	fs.IntVar(&f.limits.Service.Burst, "rate-limit-service-burst", lim.Service.Burst, "burst allowed to each service or admin token")
	fs.BoolVar(&f.sqlSpans, "trace-sqlite-statements", false, "trace every SQLite statement, not only each transaction's begin and commit (PostgreSQL statements are always traced)")
	fs.IntVar(&f.batching.MaxSize, "write-batch-max", db.DefaultBatchSize, fmt.Sprintf("most write transactions that share one database commit (1: no batching; at most %d)", db.MaxBatchSize))
	fs.DurationVar(&f.batching.Linger, "write-batch-linger", 0, "how long a writer waits for a batch to fill before it begins (0: batches form from what queues while the previous one commits)")
	fs.IntVar(&f.batching.Writers, "write-batch-writers", db.DefaultBatchWriters, "PostgreSQL: how many batches may run at once, each on its own connection; at most half the 16-connection pool (SQLite has one writer)")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go profiles (net/http/pprof) on this separate address, e.g. 127.0.0.1:6060 (default off)")
	fs.StringVar(&f.services, "services", "all", "services this process runs: all, or a comma-separated subset of "+strings.Join(app.AllServices, ","))
	fs.Var(&f.peers, "peer", "where a service this process needs but does not run listens: name=url (repeatable; or GODWIT_PEER_<NAME>=url)")
	fs.DurationVar(&f.peerTimeout, "peer-timeout", app.DefaultPeerTimeout, "how long one call to a peer service may take")
	fs.DurationVar(&f.checkoutLease, "checkout-lease", 2*time.Minute, "how long a running checkout is protected from the recovery pass (longer than any checkout takes)")
}

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]")
	var (
		common commonFlags
		f      serveFlags
	)
	common.register(fs)
	f.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if f.logFormat != "json" && f.logFormat != "text" {
		return fmt.Errorf("--log-format must be json or text, not %q", f.logFormat)
	}
	prog, err := loadProgram(f.programFile)
	if err != nil {
		return err
	}

	services, err := app.ParseServices(f.services)
	if err != nil {
		return fmt.Errorf("--services: %w", err)
	}
	peers, err := f.peerMap(e.getenv)
	if err != nil {
		return err
	}
	if f.peerTimeout <= 0 {
		return errors.New("--peer-timeout must be positive")
	}

	tel, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: app.ServiceName(services), ServiceVersion: version(),
		LogFormat: f.logFormat, LogLevel: level, Getenv: e.getenv,
	}, e.stderr)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		// Bounded: an absent collector must not hold up exit.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	log := tel.Logger

	provider, err := f.paymentProviderFor(e, tel)
	if err != nil {
		return err
	}
	sender, err := f.senderFor(e)
	if err != nil {
		return err
	}
	secret, created, err := common.loadSecret()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, app.Config{
		DSN: common.databaseDSN(), DataDir: common.dataDir, Secret: secret, Telemetry: tel,
		Program: prog, PaymentProvider: provider, Sender: sender,
		ReservationTTL: f.reservationTTL, Demo: f.demo, Jobs: f.jobs,
		Services: services, Peers: peers, PeerTimeout: f.peerTimeout, CheckoutLease: f.checkoutLease,
		RateLimits: f.limits, SQLiteStatementSpans: f.sqlSpans, Batching: f.batching,
	})
	if err != nil {
		return err
	}
	defer a.Close()

	if created {
		tok, err := a.Keys.Mint(auth.ScopeAdmin, "admin", 30*24*time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Generated a token signing secret in %s (keep it private; share it between replicas).\n", common.secretPath())
		fmt.Fprintf(e.stdout, "Admin token (30 days; mint more with 'godwit token admin <name>'):\n%s\n", tok)
	}

	if f.pprofAddr != "" {
		stopPprof, err := servePprof(f.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.addr, err)
	}
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		a.RunJobs(jobsCtx)
	}()
	defer func() {
		stopJobs()
		<-jobsDone
	}()

	log.Info("godwit serving", "addr", ln.Addr().String(), "database", string(a.DB.Engine()), "payment", f.paymentProvider, "version", version(),
		"services", strings.Join(a.Services, ","), "peers", f.peerMapString(peers))
	fmt.Fprintf(e.stdout, "Godwit listening on http://%s (database: %s)\n", displayAddr(ln.Addr()), a.DB.Engine())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", f.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

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

// paymentProviderFor returns the provider chosen by --payment; nil means the
// built-in simulator, which the app builds on the database.
func (f *serveFlags) paymentProviderFor(e env, tel *telemetry.Telemetry) (payment.Provider, error) {
	switch f.paymentProvider {
	case "simulator":
		return nil, nil
	case "stripe":
		key, err := stripe.LoadSecretKey(e.getenv("GODWIT_STRIPE_SECRET_KEY"), f.stripeKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--payment stripe: %w", err)
		}
		p, err := stripe.New(stripe.Config{SecretKey: key, APIBase: f.stripeAPIBase, TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
		if err != nil {
			return nil, fmt.Errorf("--payment stripe: %w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("--payment must be simulator or stripe, not %q", f.paymentProvider)
}

func (f *serveFlags) senderFor(e env) (notify.Sender, error) {
	if f.smtpAddr == "" {
		return nil, nil
	}
	password := e.getenv("GODWIT_SMTP_PASSWORD")
	if f.smtpPasswordFile != "" {
		if password != "" {
			return nil, errors.New("set either --smtp-password-file or GODWIT_SMTP_PASSWORD, not both")
		}
		b, err := os.ReadFile(f.smtpPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	s, err := smtp.New(smtp.Config{Addr: f.smtpAddr, TLS: f.smtpTLS, Username: f.smtpUsername, Password: password, From: f.smtpFrom, HELO: f.smtpHELO})
	if err != nil {
		return nil, fmt.Errorf("--smtp-addr: %w", err)
	}
	return s, nil
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

// servePprof serves Go's profiles on their own listener, away from the API, so
// they can be bound to loopback while the API is public.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "error", err.Error())
		}
	}()
	log.Info("pprof serving", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
