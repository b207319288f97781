// Package stripehook receives Stripe's webhooks on POST /v1/webhooks/stripe:
// it checks each event's Stripe-Signature (stripe-go's webhook package, with
// a tolerance window and several signing secrets at once so a secret can be
// rotated), stores the event once by its id (never its payload: a charge
// carries the cardholder's billing details) and applies it to Godwit.
//
// Processing is idempotent and tolerant of order. A payment_intent event asks
// the checkout to settle the charge (the checkout asks the provider for the
// charge's state itself, so an event's own status is never trusted); an event
// whose checkout is not recorded yet stays pending and the retry job tries it
// again for up to an hour. charge.refunded and a lost dispute change the
// order as a refund does, without calling the provider. A row is processed by
// one request or replica at a time (a claim with an expiry), so a crash after
// the event was stored leaves it to the retry job.
//
// The package also sends the payment simulator's charges to this endpoint as
// Stripe-shaped signed events (sender.go), so the whole flow runs without
// Stripe.
package stripehook

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Defaults of Config.
const (
	DefaultTolerance = 5 * time.Minute
	DefaultRetryFor  = time.Hour
	DefaultClaim     = 30 * time.Second
	// MaxBody bounds an event's size; Stripe's events are far smaller.
	MaxBody = 256 << 10
)

// Settler settles the checkout a charge paid for, as the client's confirm
// does: checkout.Service.SettleCharge. found is false when no checkout has
// (yet) recorded the charge. It must be safe to call any number of times,
// concurrently with itself and with confirm.
type Settler interface {
	SettleCharge(ctx context.Context, chargeID string) (found bool, err error)
}

// Orders applies to an order what happened to its charge outside Godwit
// (checkout.Service, internal/checkout/external.go). found is false when no
// order has the charge.
type Orders interface {
	// RefundedOutside brings the order's refunded amount up to refunded, the
	// charge's total refunded as the provider reports it.
	RefundedOutside(ctx context.Context, chargeID string, refunded money.Money) (found bool, err error)
	// DisputeLost takes back what is left of the order and the points it earned.
	DisputeLost(ctx context.Context, chargeID, disputeID string) (found bool, err error)
	// ChargeTraceParent is the W3C traceparent of the checkout that made the
	// charge ("" when unknown).
	ChargeTraceParent(ctx context.Context, chargeID string) string
}

// Config holds the Service's dependencies.
type Config struct {
	DB *db.DB
	// Secrets are the endpoint's signing secrets (whsec_…); an event signed
	// with any of them is accepted, so a secret is rotated by adding the new
	// one, then removing the old once Stripe has stopped signing with it.
	// None: the endpoint answers 503 webhook_not_configured.
	Secrets []string
	// Tolerance is how old an event's signature timestamp may be; default
	// DefaultTolerance.
	Tolerance time.Duration
	// Settler and Orders apply events; nil Orders leaves charge events
	// recorded as unhandled.
	Settler Settler
	Orders  Orders
	// RetryFor is how long an event waiting for its checkout is retried;
	// default DefaultRetryFor.
	RetryFor time.Duration
	// Claim is how long a processing attempt holds an event before another
	// may take it (a crashed process's attempt); default DefaultClaim.
	Claim time.Duration
	// FailAfterAccept is a test-only fault point: called once an event is
	// stored and claimed, a non-nil error stops the request there as if the
	// process had died, leaving the event to the retry job.
	FailAfterAccept func(eventID string) error

	Now            func() time.Time
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Logger         *slog.Logger
}

// Service receives and processes Stripe events.
type Service struct {
	cfg    Config
	tracer trace.Tracer
	log    *slog.Logger
	events metric.Int64Counter
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Settler == nil {
		return nil, errors.New("stripehook: DB and Settler are required")
	}
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider, Meter: &cfg.MeterProvider})
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.Claim <= 0 {
		cfg.Claim = DefaultClaim
	}
	var secrets []string
	for _, s := range cfg.Secrets {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	cfg.Secrets = secrets
	s := &Service{cfg: cfg, log: cfg.Logger, tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/stripehook")}
	var err error
	s.events, err = cfg.MeterProvider.Meter("github.com/godwit-dev/godwit/internal/stripehook").Int64Counter("godwit.stripe.webhook.events",
		metric.WithUnit("{event}"), metric.WithDescription("Stripe webhook deliveries by result"))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ParseSecrets splits a comma-separated list of signing secrets
// (GODWIT_STRIPE_WEBHOOK_SECRETS).
func ParseSecrets(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Configured reports whether the endpoint has a signing secret.
func (s *Service) Configured() bool { return len(s.cfg.Secrets) > 0 }
