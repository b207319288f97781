// Package payment charges, voids and refunds card payments through a Provider.
// The built-in Simulator is the default provider: it takes test tokens only,
// keeps its charges in the database (so a retried or recovered charge with the
// same idempotency key finds the first one), and has admin-settable latency and
// decline rate for fault injection. Card numbers are never accepted, stored,
// logged or traced.
package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Charge statuses.
const (
	// StatusRequiresAction: the charge waits for the customer to
	// authenticate (3-D Secure); it settles as succeeded or declined, or is
	// cancelled (voided).
	StatusRequiresAction = "requires_action"
	// StatusAuthorized: a manual-capture charge the issuer authorised and
	// nothing captured yet; Capture takes all or part of it, Void releases it.
	StatusAuthorized        = "authorized"
	StatusSucceeded         = "succeeded"
	StatusDeclined          = "declined"
	StatusVoided            = "voided"
	StatusPartiallyRefunded = "partially_refunded"
	StatusRefunded          = "refunded"
)

// Error codes callers in other packages and processes compare against.
const (
	// CodeChargeNotFound: no charge was made under an idempotency key, or no
	// charge has the id.
	CodeChargeNotFound = "charge_not_found"
	// CodePaymentDeclined: the provider declined the charge (details
	// decline_code, retryable).
	CodePaymentDeclined = "payment_declined"
	// CodeChargeNotWaiting: the charge is not waiting for authentication
	// (409 from the simulated authentication).
	CodeChargeNotWaiting = "charge_not_waiting"
	// CodeChargeNotCancelable: the charge moved money and cannot be cancelled.
	CodeChargeNotCancelable = "charge_not_cancelable"
	// CodeChargeNotCapturable: the charge is not an authorisation waiting
	// for capture, or was captured for another amount.
	CodeChargeNotCapturable = "charge_not_capturable"
)

// DeclineAuthenticationFailed is the decline code of a charge whose customer
// failed or refused the authentication (Stripe's code for it).
const DeclineAuthenticationFailed = "payment_intent_authentication_failure"

// ChargeRequest asks for a charge. IdempotencyKey (the checkout id) makes a
// repeated request return the first charge instead of charging again.
type ChargeRequest struct {
	IdempotencyKey string
	Amount         money.Money
	Token          string // a provider token such as tok_visa; never logged
	Description    string
	// OrderID is the id the order will have once the charge succeeds (the
	// checkout allocates it before charging); it only labels the
	// payment.process span.
	OrderID string
	// CaptureManual asks for an authorisation only (status authorized): the
	// money is taken later by Capture, all or less, or released by Void.
	CaptureManual bool
}

// Charge is a provider's record of a charge attempt.
type Charge struct {
	ID             string      `json:"id"`
	IdempotencyKey string      `json:"-"`
	Amount         money.Money `json:"amount"`
	Status         string      `json:"status"`
	DeclineCode    string      `json:"decline_code,omitempty"`
	Refunded       money.Money `json:"refunded"`
	CreatedAt      time.Time   `json:"created_at"`
	// ClientSecret lets the customer's browser complete the authentication
	// of a requires_action charge. It is never logged nor put on spans.
	ClientSecret string `json:"-"`
	// NextAction is what the customer must do, as the provider gives it
	// (Stripe's next_action object); set on a requires_action charge.
	NextAction json.RawMessage `json:"next_action,omitempty"`
}

// Refund is one refund of (part of) a charge.
type Refund struct {
	ID       string      `json:"id"`
	ChargeID string      `json:"charge_id"`
	Amount   money.Money `json:"amount"`
}

// DeclineError is a charge the issuer or gateway refused. Soft declines
// (processing_error) may succeed when retried later; hard ones will not.
type DeclineError struct {
	Code string
	Soft bool
}

func (e *DeclineError) Error() string {
	kind := "hard"
	if e.Soft {
		kind = "soft"
	}
	return fmt.Sprintf("payment declined (%s, %s)", e.Code, kind)
}

// AsDecline returns the DeclineError in err's chain.
func AsDecline(err error) (*DeclineError, bool) {
	var d *DeclineError
	ok := errors.As(err, &d)
	return d, ok
}

// Provider is a payment gateway. Stripe will implement it too.
type Provider interface {
	// Name is the gateway's name for the peer.service attribute.
	Name() string
	// Charge charges req.Amount; the same IdempotencyKey returns the first
	// result (the same charge, or the same decline as a *DeclineError).
	Charge(ctx context.Context, req ChargeRequest) (Charge, error)
	// Lookup returns the charge made under an idempotency key, or errs NotFound
	// CodeChargeNotFound when none was made.
	Lookup(ctx context.Context, idempotencyKey string) (Charge, error)
	// Void cancels a charge that has not been refunded. Idempotent.
	Void(ctx context.Context, chargeID string) (Charge, error)
	// Refund returns amount (all or part of what is left) of a charge.
	// Idempotent on key.
	Refund(ctx context.Context, chargeID string, amount money.Money, key string) (Refund, error)
	// Retrieve returns a charge's current state (errs NotFound
	// CodeChargeNotFound when there is none): the source of truth a checkout
	// waiting for authentication settles on.
	Retrieve(ctx context.Context, chargeID string) (Charge, error)
	// Capture takes amount (all or less of what was authorised) of an
	// authorized charge, which becomes succeeded for that amount. Capturing
	// again for the same amount returns the charge; another amount, or a
	// charge that is not authorized, is errs Conflict CodeChargeNotCapturable.
	// key is the request's idempotency key at the gateway.
	Capture(ctx context.Context, chargeID string, amount money.Money, key string) (Charge, error)
	// Cancel cancels a charge that has not moved money (one waiting for
	// authentication); idempotent. A charge that succeeded meanwhile is errs
	// Conflict CodeChargeNotCancelable.
	Cancel(ctx context.Context, chargeID string) error
}

var tokenPattern = regexp.MustCompile(`^tok_[A-Za-z0-9_]{1,64}$`)

// ValidateToken checks that a payment token has the shape of a provider token.
func ValidateToken(tok string) error {
	if !tokenPattern.MatchString(tok) {
		return errs.Coded(errs.Unprocessable, "invalid_payment_token", "payment.token must be a provider token such as tok_visa").With("field", "payment.token")
	}
	return nil
}

// Config holds the Service's dependencies.
type Config struct {
	Provider       Provider
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
}

// Service is the payment service: it calls the provider and traces every call
// as the seed describes (payment.process → payment.gateway_call, CLIENT spans).
type Service struct {
	provider Provider
	now      func() time.Time
	tracer   trace.Tracer
	log      *slog.Logger
}

// New returns a payment Service over cfg.Provider.
func New(cfg Config) *Service {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	return &Service{provider: cfg.Provider, now: cfg.Now, log: cfg.Logger,
		tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/payment")}
}

// Provider returns the underlying provider.
func (s *Service) Provider() Provider { return s.provider }

// Charge charges a payment token. A decline is returned as errs PaymentRequired
// "payment_declined" (details decline_code, retryable) wrapping a *DeclineError.
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	ctx, span := s.tracer.Start(ctx, "payment.process", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.Int64("payment.amount", req.Amount.Amount),
		attribute.String("payment.currency", req.Amount.Currency),
		attribute.String("payment.method_type", "card"),
	))
	defer span.End()
	if req.OrderID != "" {
		span.SetAttributes(attribute.String("order.id", req.OrderID))
	}
	if err := ValidateToken(req.Token); err != nil {
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Charge{}, err
	}
	ch, err := s.gatewayCall(ctx, "charge", func(ctx context.Context) (Charge, error) { return s.provider.Charge(ctx, req) })
	if err != nil {
		if d, ok := AsDecline(err); ok {
			span.SetAttributes(attribute.String("payment.decline_code", d.Code), attribute.String("payment.status", StatusDeclined))
			span.SetStatus(codes.Error, CodePaymentDeclined)
			return Charge{}, errs.Coded(errs.PaymentRequired, CodePaymentDeclined, "the payment was declined (%s)", d.Code).
				With("decline_code", d.Code).With("retryable", d.Soft).Wrap(err)
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Charge{}, err
	}
	span.SetAttributes(attribute.String("payment.charge_id", ch.ID), attribute.String("payment.status", ch.Status))
	return ch, nil
}

// gatewayCall runs one provider call inside a payment.gateway_call CLIENT span.
func (s *Service) gatewayCall(ctx context.Context, op string, call func(ctx context.Context) (Charge, error)) (Charge, error) {
	ctx, span := s.tracer.Start(ctx, "payment.gateway_call", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("peer.service", s.provider.Name()),
		attribute.String("payment.operation", op),
	))
	defer span.End()
	start := time.Now()
	ch, err := call(ctx)
	span.SetAttributes(attribute.Int64("payment.gateway_latency_ms", time.Since(start).Milliseconds()))
	if err != nil {
		code := errs.CodeOf(err)
		if d, ok := AsDecline(err); ok {
			span.SetAttributes(attribute.String("payment.decline_code", d.Code), attribute.String("payment.status", StatusDeclined))
			code = "payment_declined" // a decline is the gateway's answer, not an internal error
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, code)
		return Charge{}, err
	}
	span.SetAttributes(attribute.String("payment.charge_id", ch.ID), attribute.String("payment.status", ch.Status))
	return ch, nil
}

// Lookup returns the charge made under an idempotency key (errs NotFound
// CodeChargeNotFound when none was made); recovery asks it "was this checkout
// charged?".
func (s *Service) Lookup(ctx context.Context, idempotencyKey string) (Charge, error) {
	return s.gatewayCall(ctx, "lookup", func(ctx context.Context) (Charge, error) { return s.provider.Lookup(ctx, idempotencyKey) })
}

// Void cancels a charge.
func (s *Service) Void(ctx context.Context, chargeID string) (Charge, error) {
	ctx, span := s.tracer.Start(ctx, "payment.void", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("payment.charge_id", chargeID)))
	defer span.End()
	ch, err := s.gatewayCall(ctx, "void", func(ctx context.Context) (Charge, error) { return s.provider.Void(ctx, chargeID) })
	if err != nil {
		span.SetStatus(codes.Error, errs.CodeOf(err))
	}
	return ch, err
}

// Retrieve returns a charge's current state from the provider.
func (s *Service) Retrieve(ctx context.Context, chargeID string) (Charge, error) {
	return s.gatewayCall(ctx, "retrieve", func(ctx context.Context) (Charge, error) { return s.provider.Retrieve(ctx, chargeID) })
}

// Cancel cancels a charge that has not moved money (idempotent).
func (s *Service) Cancel(ctx context.Context, chargeID string) error {
	ctx, span := s.tracer.Start(ctx, "payment.cancel", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("payment.charge_id", chargeID)))
	defer span.End()
	_, err := s.gatewayCall(ctx, "cancel", func(ctx context.Context) (Charge, error) {
		return Charge{ID: chargeID, Status: StatusVoided}, s.provider.Cancel(ctx, chargeID)
	})
	if err != nil {
		span.SetStatus(codes.Error, errs.CodeOf(err))
	}
	return err
}

// Capture captures amount of an authorized charge (payment.capture span).
func (s *Service) Capture(ctx context.Context, chargeID string, amount money.Money, key string) (Charge, error) {
	ctx, span := s.tracer.Start(ctx, "payment.capture", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("payment.charge_id", chargeID), attribute.Int64("payment.amount", amount.Amount), attribute.String("payment.currency", amount.Currency)))
	defer span.End()
	ch, err := s.gatewayCall(ctx, "capture", func(ctx context.Context) (Charge, error) { return s.provider.Capture(ctx, chargeID, amount, key) })
	if err != nil {
		span.SetStatus(codes.Error, errs.CodeOf(err))
	}
	return ch, err
}

// Refund refunds amount of a charge, idempotently on key.
func (s *Service) Refund(ctx context.Context, chargeID string, amount money.Money, key string) (Refund, error) {
	ctx, span := s.tracer.Start(ctx, "payment.refund", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("payment.charge_id", chargeID), attribute.Int64("payment.amount", amount.Amount), attribute.String("payment.currency", amount.Currency)))
	defer span.End()
	var rf Refund
	_, err := s.gatewayCall(ctx, "refund", func(ctx context.Context) (Charge, error) {
		var err error
		rf, err = s.provider.Refund(ctx, chargeID, amount, key)
		return Charge{ID: chargeID, Status: "refunded"}, err
	})
	if err != nil {
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Refund{}, err
	}
	return rf, nil
}
