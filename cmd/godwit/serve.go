package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
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

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]")
	var (
		common          commonFlags
		addr            = fs.String("addr", ":8080", "HTTP listen address")
		logFormat       = fs.String("log-format", "json", "log format: json or text")
		logLevel        = fs.String("log-level", "info", "log level: debug, info, warn or error")
		shutdownTimeout = fs.Duration("shutdown-timeout", 4*time.Second, "how long in-flight requests may take to finish on SIGINT/SIGTERM")
	)
	common.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if *logFormat != "json" && *logFormat != "text" {
		return fmt.Errorf("--log-format must be json or text, not %q", *logFormat)
	}

	tel, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: "godwit", ServiceVersion: version(),
		LogFormat: *logFormat, LogLevel: level, Getenv: e.getenv,
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

	secret, created, err := common.loadSecret()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, app.Config{DSN: common.databaseDSN(), Secret: secret, Telemetry: tel})
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

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
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
	log.Info("godwit serving", "addr", ln.Addr().String(), "database", string(a.DB.Engine()), "version", version())
	fmt.Fprintf(e.stdout, "Godwit listening on http://%s (database: %s)\n", displayAddr(ln.Addr()), a.DB.Engine())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *shutdownTimeout)
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
