package stripe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/payment"
)

// softCodes are the decline codes worth retrying later: the issuer or network
// had a problem, not the card.
var softCodes = map[string]bool{
	"processing_error":                 true,
	"try_again_later":                  true,
	"issuer_not_available":             true,
	"reenter_transaction":              true,
	"approve_with_id":                  true,
	"rate_limit":                       true,
	"card_decline_rate_limit_exceeded": true,
}

// IsSoftDecline reports whether a Stripe decline code is soft (worth retrying
// later).
func IsSoftDecline(code string) bool { return softCodes[code] }

// declineCode is the most specific code of a card error: the issuer's
// decline_code when there is one (insufficient_funds, lost_card, …), else the
// error code (expired_card, incorrect_cvc, processing_error, …).
func declineCode(e *stripeapi.Error) string {
	if e.DeclineCode != "" {
		return string(e.DeclineCode)
	}
	var ce *stripeapi.CardError
	if errors.As(e.Err, &ce) && ce.DeclineCode != "" {
		return string(ce.DeclineCode)
	}
	return string(e.Code)
}

// gatewayError is the cause kept under an errs.Error: what Stripe said, minus
// its message (which may echo parameters) and the objects it attaches.
type gatewayError struct {
	op        string
	status    int
	typ, code string
	requestID string
}

func (e *gatewayError) Error() string {
	s := fmt.Sprintf("stripe %s: status %d", e.op, e.status)
	if e.typ != "" {
		s += " type " + e.typ
	}
	if e.code != "" {
		s += " code " + e.code
	}
	if e.requestID != "" {
		s += " request " + e.requestID
	}
	return s
}

// RequestID returns Stripe's request id of a failed call, if err carries one.
func RequestID(err error) string {
	var g *gatewayError
	if errors.As(err, &g) {
		return g.requestID
	}
	return ""
}

// mapError turns an SDK error into Godwit's: card errors become
// *payment.DeclineError; the rest become errs kinds the HTTP edge knows.
func mapError(ctx context.Context, op string, err error) error {
	var se *stripeapi.Error
	if !errors.As(err, &se) {
		return mapTransport(ctx, op, err)
	}
	cause := &gatewayError{op: op, status: se.HTTPStatusCode, typ: string(se.Type), code: string(se.Code), requestID: se.RequestID}
	switch {
	case se.Type == stripeapi.ErrorTypeCard:
		code := declineCode(se)
		if code == "" {
			code = "card_declined"
		}
		return &payment.DeclineError{Code: code, Soft: softCodes[code] || softCodes[string(se.Code)]}
	case se.HTTPStatusCode == http.StatusTooManyRequests || se.Type == stripeapi.ErrorTypeRateLimit || se.Code == "rate_limit":
		return errs.Coded(errs.Unavailable, "payment_gateway_busy", "the payment gateway is rate limiting requests; retry later").
			With("retryable", true).Wrap(cause)
	case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden || se.Type == "authentication_error":
		return errs.Coded(errs.BadGateway, "payment_gateway_auth", "the payment gateway rejected Godwit's credentials").Wrap(cause)
	case se.Type == stripeapi.ErrorTypeIdempotency:
		return errs.Coded(errs.Unprocessable, "idempotency_key_reused", "this idempotency key was used for a different payment request").Wrap(cause)
	case se.Code == stripeapi.ErrorCodeIdempotencyKeyInUse || se.Code == stripeapi.ErrorCodeLockTimeout:
		return errs.Coded(errs.Unavailable, "payment_gateway_busy", "the payment is being processed by a concurrent request; retry later").
			With("retryable", true).Wrap(cause)
	case se.Code == stripeapi.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound:
		return errs.Coded(errs.NotFound, payment.CodeChargeNotFound, "the payment gateway has no such charge").Wrap(cause)
	case se.Code == stripeapi.ErrorCodeAmountTooSmall || se.Code == stripeapi.ErrorCodeAmountTooLarge:
		return errs.Coded(errs.Unprocessable, "invalid_amount", "the payment gateway does not accept this amount").With("gateway_code", string(se.Code)).Wrap(cause)
	case se.Code == stripeapi.ErrorCodeChargeAlreadyRefunded || se.Code == stripeapi.ErrorCodePaymentIntentUnexpectedState:
		return errs.Coded(errs.Conflict, "charge_state_conflict", "the charge is not in a state that allows this").With("gateway_code", string(se.Code)).Wrap(cause)
	case se.Type == stripeapi.ErrorTypeAPI || se.HTTPStatusCode >= 500:
		return errs.Coded(errs.BadGateway, "payment_gateway_error", "the payment gateway failed").With("retryable", true).Wrap(cause)
	default:
		return errs.Coded(errs.BadGateway, "payment_gateway_rejected", "the payment gateway rejected the request").Wrap(cause)
	}
}

// mapTransport maps failures below the API: timeouts, refused connections, DNS.
func mapTransport(ctx context.Context, op string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("stripe %s: %w", op, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return errs.Coded(errs.Timeout, "payment_gateway_timeout", "the payment gateway did not answer in time").
			With("retryable", true).Wrap(fmt.Errorf("stripe %s: timeout", op))
	default:
		// The SDK's transport errors name the URL (the API base, no key);
		// keep only the innermost cause.
		inner := err
		for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
			inner = u
		}
		return errs.Coded(errs.Unavailable, "payment_gateway_unavailable", "the payment gateway cannot be reached").
			With("retryable", true).Wrap(fmt.Errorf("stripe %s: %w", op, inner))
	}
}
