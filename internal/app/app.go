// Package app builds Godwit from configuration: the database, the HTTP API with
// every service's routes, and the background jobs. Wiring is plain code, read
// top to bottom.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/api"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// Config is what New needs.
type Config struct {
	DSN       string // SQLite path or postgres:// URL
	Secret    []byte // token signing secret
	Telemetry *telemetry.Telemetry
	Now       func() time.Time // nil: time.Now
}

// App is a built Godwit process.
type App struct {
	DB      *db.DB
	Keys    *auth.Keys
	API     *httpx.API
	Handler http.Handler // the whole HTTP surface, instrumented
	log     *slog.Logger
	tel     *telemetry.Telemetry
}

// New opens and migrates the database and builds every service and route.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Telemetry == nil {
		return nil, errors.New("app: telemetry is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tel := cfg.Telemetry
	log := tel.Logger

	keys, err := auth.NewKeys(cfg.Secret, cfg.Now)
	if err != nil {
		return nil, err
	}
	d, err := db.Open(ctx, cfg.DSN, db.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, d, nil); err != nil {
		_ = d.Close()
		return nil, err
	}

	idem := idempotency.NewStore(d, idempotency.Options{Now: cfg.Now})
	api := httpx.NewAPI(keys, idem, log)
	a := &App{DB: d, Keys: keys, API: api, log: log, tel: tel}

	api.Add(a.adminRoutes()...)
	api.Handle("GET /healthz", http.HandlerFunc(a.healthz))
	api.Handle("GET /readyz", http.HandlerFunc(a.readyz))
	api.Handle("GET /metrics", tel.MetricsHandler)

	a.Handler = otelhttp.NewHandler(api, "http.server",
		otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithMeterProvider(tel.MeterProvider),
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
	return a, nil
}

// Close releases the database.
func (a *App) Close() error { return a.DB.Close() }

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
