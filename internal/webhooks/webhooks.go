// Package webhooks delivers the event catalogue (internal/events) to HTTP
// endpoints that administrators subscribe: each delivery is signed per the
// Standard Webhooks specification (webhook-id = the event id,
// webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256>"), retried
// with exponential backoff and jitter, and dead-lettered once its attempts
// are spent; a subscription whose endpoint keeps failing is disabled, with
// an event of its own.
//
// Two jobs do the work, both safe on every replica at once: the fan-out pass
// turns each new event row into one delivery row per matching subscription
// (claiming events with SKIP LOCKED on PostgreSQL; SQLite's one writer
// serialises it), and the delivery pass claims due deliveries with a lease
// (as the e-mail outbox does) and sends them. Outbound requests have a
// timeout and, unless AllowPrivate is set, refuse loopback, private,
// link-local and other non-public addresses, checked on the address actually
// dialled (after DNS), not only on the URL.
package webhooks

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// scope is the instrumentation scope of the package's spans and metrics.
const scope = "github.com/godwit-dev/godwit/internal/webhooks"

// Defaults of Config. With them a failing delivery is retried for about
// 13 hours (10 s doubling to a 2 h cap, 15 attempts, each wait ±20 %)
// before it is dead-lettered.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxAttempts  = 15
	DefaultBaseBackoff  = 10 * time.Second
	DefaultMaxBackoff   = 2 * time.Hour
	DefaultDisableAfter = 50
	DefaultLease        = 2 * time.Minute
	DefaultBatch        = 100
	DefaultParallel     = 8
)

// Config is what New needs.
type Config struct {
	DB             *db.DB
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Logger         *slog.Logger
	// AllowPrivate lets deliveries go to loopback and private addresses
	// (tests, a receiver on the same host); off, they are refused at dial time.
	AllowPrivate bool
	// Timeout bounds one delivery request; default DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts before a delivery is dead; default DefaultMaxAttempts.
	MaxAttempts int
	// BaseBackoff is the wait after the first failure, doubled per attempt
	// up to MaxBackoff, each wait spread ±20 % (jitter).
	BaseBackoff, MaxBackoff time.Duration
	// DisableAfter failed attempts in a row (no success between) disables a
	// subscription; default DefaultDisableAfter.
	DisableAfter int
	// Lease protects a claimed delivery from other replicas; default DefaultLease.
	Lease time.Duration
	// Batch is the most events fanned out, and deliveries claimed, per pass.
	Batch int
	// Parallel is how many deliveries a pass sends at once.
	Parallel int
	// Rand returns a number in [0, 1) for the jitter; nil: math/rand/v2.
	Rand func() float64
	// Transport replaces the outbound transport (tests); its dialer is then
	// the caller's business.
	Transport http.RoundTripper
}

// Service manages subscriptions and delivers events.
type Service struct {
	cfg    Config
	db     *db.DB
	now    func() time.Time
	log    *slog.Logger
	tracer trace.Tracer
	client *http.Client
	rec    events.Recorder

	attempts metric.Int64Counter
	latency  metric.Float64Histogram
}

// New returns a Service.
func New(cfg Config) *Service {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider, Meter: &cfg.MeterProvider})
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Rand == nil {
		cfg.Rand = randFloat
	}
	transport := cfg.Transport
	if transport == nil {
		transport = newTransport(cfg.AllowPrivate, cfg.Timeout)
	}
	s := &Service{cfg: cfg, db: cfg.DB, now: cfg.Now, log: cfg.Logger,
		tracer: cfg.TracerProvider.Tracer(scope),
		client: &http.Client{Transport: transport, Timeout: cfg.Timeout,
			// A redirect would send the signed event somewhere not subscribed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	m := cfg.MeterProvider.Meter(scope)
	s.attempts, _ = m.Int64Counter("godwit.webhook.deliveries", metric.WithUnit("{attempt}"),
		metric.WithDescription("Webhook delivery attempts by result (delivered, retry, dead)"))
	s.latency, _ = m.Float64Histogram("godwit.webhook.delivery.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of one webhook delivery request"))
	return s
}

// traceContextOf writes ctx's W3C trace context into h.
func traceContextOf(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}
