package stripehook

import (
	"errors"
	"io"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Path is where Stripe delivers events.
const Path = "/v1/webhooks/stripe"

// Routes returns the webhook endpoint. It is public: Stripe sends no
// token, and the Stripe-Signature header is what authenticates a delivery.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: Path, Summary: "Receive a Stripe webhook event (authenticated by its Stripe-Signature)", Access: auth.Public,
			MaxBody: MaxBody, Handler: s.handle},
	}
}

func (s *Service) handle(w http.ResponseWriter, r *http.Request) error {
	if !s.Configured() {
		s.reject(r, CodeNotConfigured)
		return errs.Coded(errs.Unavailable, CodeNotConfigured, "no Stripe webhook signing secret is configured (GODWIT_STRIPE_WEBHOOK_SECRETS)")
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(r, "body_too_large")
			return errs.Coded(errs.TooLarge, "body_too_large", "the request body is larger than %d bytes", tooBig.Limit).With("limit_bytes", tooBig.Limit)
		}
		return errs.Coded(errs.Invalid, CodeInvalidEvent, "the request body could not be read").Wrap(err)
	}
	ev, err := s.verify(payload, r.Header.Get("Stripe-Signature"))
	if err != nil {
		s.reject(r, errs.CodeOf(err))
		return err
	}
	e, err := parse(ev, s.cfg.Now())
	if err != nil {
		s.reject(r, errs.CodeOf(err))
		return err
	}
	span := trace.SpanFromContext(r.Context())
	span.SetAttributes(attribute.String("payment.webhook.event_id", e.ID), attribute.String("payment.webhook.event_type", e.Type))
	res, err := s.Accept(r.Context(), e)
	if err != nil {
		if errors.Is(err, errNotHeld) {
			// Another attempt took the event over; it is stored, and that
			// attempt (or the retry job) finishes it.
			res.State = statePending
		} else {
			// Stored or not, Stripe retries a delivery that failed; a
			// stored event is also retried by the retry job.
			return err
		}
	}
	span.SetAttributes(attribute.Bool("payment.webhook.duplicate", res.Duplicate))
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

// reject counts a refused delivery.
func (s *Service) reject(r *http.Request, code string) {
	s.events.Add(r.Context(), 1, metric.WithAttributes(attribute.String("payment.webhook.result", "rejected"),
		attribute.String("error.type", code)))
}
