// Package jobs runs background jobs: one pass of a job every interval, with
// jitter so replicas do not fire in lockstep, a span and a metric per pass,
// and a panic in one pass recovered so the job keeps running.
//
// Replica safety is the job's own business: every replica runs every job, and
// a pass must be safe to run concurrently with the same pass elsewhere (row
// claims with SKIP LOCKED, leases, conditional updates).
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// scope is the instrumentation scope of the runner's spans and metrics.
const scope = "github.com/godwit-dev/godwit/internal/platform/jobs"

// Defaults of Config.
const (
	DefaultJitter     = 0.1
	DefaultStartDelay = time.Second
)

// Outcomes of a pass, the job.outcome attribute of godwit.job.runs.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
	OutcomePanic = "panic"
)

// Config is what a Runner needs; nil providers and logger mean no-ops.
type Config struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Logger         *slog.Logger
	// Jitter spreads each wait over interval ± Jitter×interval; default 0.1,
	// negative means none.
	Jitter float64
	// StartDelay bounds the random delay before a job's first pass (never
	// more than Jitter×interval); default 1s. Replicas started together then
	// do not all run their first pass at the same instant.
	StartDelay time.Duration

	// Rand returns a number in [0, 1); nil uses math/rand/v2. For tests.
	Rand func() float64
	// After waits d; nil uses a timer. For tests, which must not depend on
	// the wall clock.
	After func(d time.Duration) <-chan time.Time
}

// Runner runs jobs. Its zero value is not usable; see New.
type Runner struct {
	cfg      Config
	tracer   trace.Tracer
	log      *slog.Logger
	runs     metric.Int64Counter
	duration metric.Float64Histogram
}

// New returns a Runner.
func New(cfg Config) *Runner {
	defaults.Fill(defaults.Fields{Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	if cfg.Jitter == 0 {
		cfg.Jitter = DefaultJitter
	}
	if cfg.Jitter < 0 || cfg.Jitter >= 1 {
		cfg.Jitter = max(0, min(cfg.Jitter, 0.5))
	}
	if cfg.StartDelay <= 0 {
		cfg.StartDelay = DefaultStartDelay
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	r := &Runner{cfg: cfg, tracer: cfg.TracerProvider.Tracer(scope), log: cfg.Logger}
	if cfg.MeterProvider != nil {
		m := cfg.MeterProvider.Meter(scope)
		r.runs, _ = m.Int64Counter("godwit.job.runs", metric.WithUnit("{run}"),
			metric.WithDescription("Background job passes by job and outcome (ok, error, panic)"))
		r.duration, _ = m.Float64Histogram("godwit.job.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of one background job pass"))
	}
	return r
}

// Option changes how a job's passes are run.
type Option func(*options)

type options struct{ untraced bool }

// Untraced gives a job's passes no span of their own (they are still counted,
// timed and logged). It is for a frequent poll whose work makes its own
// traces: outbox delivery every 2 s would otherwise fill the recent-trace
// buffer, and the operations view built on it, with empty traces.
func Untraced() Option { return func(o *options) { o.untraced = true } }

// Every runs fn after a short random delay, then again every interval ± jitter,
// until ctx ends; it returns when ctx ends and the pass in flight is done. A
// pass that fails or panics is logged, recorded on its span and counted, and
// the next pass runs on time. A non-positive interval returns at once.
func (r *Runner) Every(ctx context.Context, name string, interval time.Duration, fn func(ctx context.Context) error, opts ...Option) {
	if interval <= 0 {
		return
	}
	wait := r.firstDelay(interval)
	for {
		if !r.sleep(ctx, wait) {
			return
		}
		_ = r.Run(ctx, name, fn, opts...)
		wait = r.nextDelay(interval)
	}
}

// Run runs one pass of the job named name: a span "job.<name>", a count and a
// duration with the outcome, and a panic turned into an error.
func (r *Runner) Run(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	span := trace.SpanFromContext(context.Background()) // a no-op span, for Untraced
	if !o.untraced {
		ctx, span = r.tracer.Start(ctx, "job."+name, trace.WithAttributes(attribute.String("job.name", name)))
		defer span.End()
	}
	start := time.Now()
	panicked, err := call(ctx, fn)
	outcome := OutcomeOK
	switch {
	case panicked:
		outcome = OutcomePanic
		span.RecordError(err, trace.WithStackTrace(true))
		span.SetStatus(codes.Error, "panic")
		r.log.ErrorContext(ctx, "background job panicked", "job", name, "error", err.Error())
	case err != nil && ctx.Err() != nil:
		// Shutting down: the pass was cut short, not broken.
		outcome = OutcomeError
		span.SetStatus(codes.Error, "cancelled")
	case err != nil:
		outcome = OutcomeError
		span.RecordError(err)
		span.SetStatus(codes.Error, "failed")
		r.log.ErrorContext(ctx, "background job failed", "job", name, "error", err.Error())
	}
	span.SetAttributes(attribute.String("job.outcome", outcome))
	if r.runs != nil {
		attrs := metric.WithAttributes(attribute.String("job.name", name), attribute.String("job.outcome", outcome))
		// The pass's ctx may be cancelled; the recording must not be lost with it.
		rec := context.WithoutCancel(ctx)
		r.runs.Add(rec, 1, attrs)
		r.duration.Record(rec, time.Since(start).Seconds(), attrs)
	}
	return err
}

// call runs fn, turning a panic into an error that carries the stack.
func call(ctx context.Context, fn func(ctx context.Context) error) (panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked, err = true, fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	return false, fn(ctx)
}

// firstDelay is a random delay in [0, min(StartDelay, Jitter×interval)].
func (r *Runner) firstDelay(interval time.Duration) time.Duration {
	bound := min(r.cfg.StartDelay, time.Duration(r.cfg.Jitter*float64(interval)))
	return time.Duration(r.cfg.Rand() * float64(bound))
}

// nextDelay is interval ± Jitter×interval, uniformly.
func (r *Runner) nextDelay(interval time.Duration) time.Duration {
	spread := r.cfg.Jitter * float64(interval)
	return interval + time.Duration((2*r.cfg.Rand()-1)*spread)
}

// sleep waits d; false means ctx ended first.
func (r *Runner) sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if r.cfg.After != nil {
		select {
		case <-ctx.Done():
			return false
		case <-r.cfg.After(d):
			return true
		}
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
