// Package telemetry configures the OpenTelemetry SDK once per process: resource, traces, metrics
// and logs, driven by the standard OTEL_* environment variables. Domain code never imports it; it
// receives the API-typed providers and the logger built here.
//
// With no OTEL_* variables set nothing is sent over the network: spans still land in the
// in-memory TraceBuffer and metrics are still served by MetricsHandler, so a single `godwit serve`
// is observable with nothing else installed.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName is the scope of log records bridged to OTLP.
const instrumentationName = "github.com/godwit-dev/godwit"

// defaultShutdownTimeout bounds Shutdown when the caller's context has no deadline, so an
// unreachable collector can delay exit but never block it.
const defaultShutdownTimeout = 10 * time.Second

// Config holds the code-side defaults of telemetry. Environment variables read through Getenv
// take precedence over the resource fields, as operators expect.
type Config struct {
	ServiceName    string // service.name; default "godwit"
	ServiceVersion string // service.version; default the main module's build version
	Namespace      string // service.namespace; default "godwit"
	Environment    string // deployment.environment.name; default "development"
	LogFormat      string // "json" (default) or "text"
	LogLevel       slog.Level

	TraceBufferMaxTraces        int // default 2000
	TraceBufferMaxSpansPerTrace int // default 1000

	// Getenv reads OTEL_* variables; default os.Getenv. Tests inject a map here instead of
	// touching the process environment, so they can run in parallel.
	Getenv func(string) string
}

func (c Config) withDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = "godwit"
	}
	if c.ServiceVersion == "" {
		c.ServiceVersion = buildVersion()
	}
	if c.Namespace == "" {
		c.Namespace = "godwit"
	}
	if c.Environment == "" {
		c.Environment = "development"
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
	}
	if c.TraceBufferMaxTraces <= 0 {
		c.TraceBufferMaxTraces = defaultMaxTraces
	}
	if c.TraceBufferMaxSpansPerTrace <= 0 {
		c.TraceBufferMaxSpansPerTrace = defaultMaxSpansPerTrace
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	return c
}

// Telemetry is the configured SDK. Hand its fields to the code that needs them; nothing should
// rely on the OTel globals, which Setup sets only for third-party libraries that insist on them.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator // W3C tracecontext + baggage
	Logger         *slog.Logger
	Traces         *TraceBuffer // recent traces of this process, for the built-in trace view
	MetricsHandler http.Handler // Prometheus text exposition of every OTel metric

	shutdowns    []func(context.Context) error
	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup builds the providers, the logger and the in-memory trace buffer, and sets the OTel globals.
// logOut receives the process's logs (and console exporter output, if asked for). It never dials:
// exporters connect lazily, and only when configured. Call Shutdown before exit to flush.
func Setup(ctx context.Context, cfg Config, logOut io.Writer) (_ *Telemetry, err error) {
	cfg = cfg.withDefaults()

	local, err := newLocalHandler(cfg, logOut)
	if err != nil {
		return nil, err
	}
	res, err := newResource(cfg)
	if err != nil {
		return nil, err
	}
	sampler, err := samplerFromEnv(cfg.Getenv)
	if err != nil {
		return nil, err
	}

	t := &Telemetry{
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Traces:     NewTraceBuffer(cfg.TraceBufferMaxTraces, cfg.TraceBufferMaxSpansPerTrace),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.shutdownAll(ctx))
		}
	}()
	tp, err := t.setupTraces(ctx, cfg, res, sampler, logOut)
	if err != nil {
		return nil, err
	}
	mp, err := t.setupMetrics(ctx, cfg, res, logOut)
	if err != nil {
		return nil, err
	}
	if err := t.setupLogs(ctx, cfg, res, local, logOut); err != nil {
		return nil, err
	}

	// SDK errors (failed exports, mostly) go to the local output only: routing them through the
	// OTLP bridge would feed a failing log exporter with reports of its own failure.
	errLog := slog.New(NewLogHandler(local))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		errLog.Warn("opentelemetry sdk error", "err", err)
	}))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(t.Propagator)
	return t, nil
}

// setupTraces builds the tracer provider: the buffer always sees every recorded span; network
// exporters only when configured.
func (t *Telemetry) setupTraces(ctx context.Context, cfg Config, res *resource.Resource, sampler sdktrace.Sampler, logOut io.Writer) (*sdktrace.TracerProvider, error) {
	spanExps, err := spanExporters(ctx, cfg.Getenv, logOut)
	if err != nil {
		return nil, err
	}
	traceOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithSpanProcessor(t.Traces),
	}
	for _, e := range spanExps {
		traceOpts = append(traceOpts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(traceOpts...)
	t.TracerProvider = tp
	t.shutdowns = append(t.shutdowns, tp.Shutdown)
	return tp, nil
}

// setupMetrics builds the meter provider and MetricsHandler: a private registry keeps these
// series apart from anything registered globally.
func (t *Telemetry) setupMetrics(ctx context.Context, cfg Config, res *resource.Resource, logOut io.Writer) (*sdkmetric.MeterProvider, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register process collector: %w", err)
	}
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	metricExps, err := metricExporters(ctx, cfg.Getenv, logOut)
	if err != nil {
		return nil, errors.Join(err, promExp.Shutdown(ctx))
	}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	for _, e := range metricExps {
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(e)))
	}
	mp := sdkmetric.NewMeterProvider(meterOpts...)
	t.MeterProvider = mp
	t.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	t.shutdowns = append(t.shutdowns, mp.Shutdown)
	return mp, nil
}

// setupLogs builds the logger: always local; also bridged to OTLP when a logs exporter is
// configured.
func (t *Telemetry) setupLogs(ctx context.Context, cfg Config, res *resource.Resource, local slog.Handler, logOut io.Writer) error {
	logExps, err := logExporters(ctx, cfg.Getenv, logOut)
	if err != nil {
		return err
	}
	handler := NewLogHandler(local)
	if len(logExps) > 0 {
		logOpts := []sdklog.LoggerProviderOption{sdklog.WithResource(res)}
		for _, e := range logExps {
			logOpts = append(logOpts, sdklog.WithProcessor(sdklog.NewBatchProcessor(e)))
		}
		lp := sdklog.NewLoggerProvider(logOpts...)
		t.shutdowns = append(t.shutdowns, lp.Shutdown)
		handler = fanoutHandler{
			level:    cfg.LogLevel,
			handlers: []slog.Handler{handler, otelslog.NewHandler(instrumentationName, otelslog.WithLoggerProvider(lp))},
		}
	}
	t.Logger = slog.New(handler)
	return nil
}

// newLocalHandler is the slog handler writing to the process's own output.
func newLocalHandler(cfg Config, w io.Writer) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	switch cfg.LogFormat {
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "text":
		return slog.NewTextHandler(w, opts), nil
	}
	return nil, fmt.Errorf("telemetry: log format %q: want json or text", cfg.LogFormat)
}

// Shutdown flushes and stops every provider and exporter, in parallel so that one slow exporter
// does not eat the others' share of the deadline. Without a deadline on ctx it applies its own,
// so an absent collector can never hang the process. Later calls return the first call's result.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, defaultShutdownTimeout)
			defer cancel()
		}
		t.shutdownErr = t.shutdownAll(ctx)
	})
	return t.shutdownErr
}

func (t *Telemetry) shutdownAll(ctx context.Context) error {
	errs := make([]error, len(t.shutdowns))
	var wg sync.WaitGroup
	for i, fn := range t.shutdowns {
		wg.Go(func() { errs[i] = fn(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry shutdown: %w", err)
	}
	return nil
}
