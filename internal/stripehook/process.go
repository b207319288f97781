package stripehook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
)

// Outcomes of processing, the outcome column and the payment.webhook.outcome
// span attribute.
const (
	OutcomeSettled         = "settled"          // the checkout was settled (or already was)
	OutcomeRefundApplied   = "refund_applied"   // the order's refunded amount matches the charge's
	OutcomeDisputeLost     = "dispute_lost"     // the order refunded and its points taken back
	OutcomeRecorded        = "recorded"         // kept for the record only (a dispute opened or won)
	OutcomeUnknownIntent   = "unknown_intent"   // not a charge of Godwit's
	OutcomeUnhandledType   = "unhandled_type"   // a type this endpoint does not act on
	OutcomeWaitingCheckout = "waiting_checkout" // Godwit's charge whose checkout is not recorded yet: retried
	OutcomeError           = "error"            // processing failed: retried
	OutcomeExpired         = "expired"          // retried for RetryFor without success: given up
)

// Result is the answer to a delivery.
type Result struct {
	EventID   string `json:"event_id"`
	State     string `json:"state"`
	Outcome   string `json:"outcome,omitempty"`
	Duplicate bool   `json:"duplicate"`
}

// errCrashed is returned by Accept when FailAfterAccept stopped it.
var errCrashed = errors.New("stripehook: stopped after accepting the event (test fault)")

// Accept stores a verified event (once per event id) and processes it. A
// duplicate delivery of an event another attempt is processing, or has
// processed, changes nothing.
func (s *Service) Accept(ctx context.Context, e event) (Result, error) {
	stored, err := s.insert(ctx, e)
	if err != nil {
		return Result{}, err
	}
	res := Result{EventID: e.ID, Duplicate: !stored}
	out, err := s.process(ctx, e.ID, false)
	if err != nil {
		return res, err
	}
	res.State, res.Outcome = out.State, out.Outcome
	return res, nil
}

// process runs one attempt at a stored event, when it is pending and no
// other attempt holds it; it returns the event's state afterwards.
func (s *Service) process(ctx context.Context, id string, due bool) (event, error) {
	token := uuid.NewString()
	e, held, err := s.claim(ctx, id, token, due)
	if err != nil {
		return event{}, err
	}
	if !held {
		return s.get(ctx, id)
	}
	if s.cfg.FailAfterAccept != nil {
		if err := s.cfg.FailAfterAccept(id); err != nil {
			return event{}, fmt.Errorf("%w: %w", errCrashed, err)
		}
	}
	state, outcome, perr := s.apply(ctx, e)
	lastError, retryAt := "", time.Time{}
	if state == statePending {
		if perr != nil {
			lastError = truncate(perr.Error(), 500)
		}
		if s.cfg.Now().Sub(e.Received) >= s.cfg.RetryFor {
			state, outcome = stateIgnored, OutcomeExpired
			s.log.WarnContext(ctx, "stripe event given up", "event_id", e.ID, "type", e.Type, "charge_id", e.ChargeID,
				"attempts", e.Attempts, "error", lastError)
		} else {
			retryAt = s.cfg.Now().Add(backoff(e.Attempts))
		}
	}
	held, err = s.finish(context.WithoutCancel(ctx), id, token, state, outcome, lastError, retryAt)
	if err != nil {
		return event{}, err
	}
	if !held {
		return event{}, errNotHeld
	}
	e.State, e.Outcome = state, outcome
	return e, nil
}

// backoff is the wait before retry n+1: 2 s doubling to 5 min.
func backoff(attempts int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < attempts && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// apply applies an event inside its payment.webhook.process span: a new
// trace, linked to the trace of the checkout that made the charge and to
// the span that delivered it (the request, or the retry pass). It returns
// the event's new state: pending means try again later.
func (s *Service) apply(ctx context.Context, e event) (state, outcome string, err error) {
	links := []trace.Link{trace.LinkFromContext(ctx, attribute.String("link.kind", "delivery"))}
	linked := false
	if l, ok := s.checkoutLink(ctx, e.ChargeID); ok {
		links, linked = append(links, l), true
	}
	ctx, span := s.tracer.Start(ctx, "payment.webhook.process", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...), trace.WithAttributes(
			attribute.String("payment.webhook.event_id", e.ID),
			attribute.String("payment.webhook.event_type", e.Type),
			attribute.Int("payment.webhook.attempt", e.Attempts),
			attribute.String("payment.charge_id", e.ChargeID),
		))
	defer span.End()
	state, outcome, err = s.applyType(ctx, e)
	if !linked {
		// The settle may just have created the order its checkout's trace
		// is found by.
		if l, ok := s.checkoutLink(ctx, e.ChargeID); ok {
			span.AddLink(l)
		}
	}
	span.SetAttributes(attribute.String("payment.webhook.outcome", outcome))
	result := state
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
		s.log.WarnContext(ctx, "stripe event not applied; will retry", "event_id", e.ID, "type", e.Type, "charge_id", e.ChargeID, "error", err.Error())
	}
	s.events.Add(ctx, 1, metric.WithAttributes(attribute.String("payment.webhook.result", result),
		attribute.String("payment.webhook.event_type", e.Type)))
	return state, outcome, err
}

// checkoutLink is a span link to the trace of the checkout that made the charge.
func (s *Service) checkoutLink(ctx context.Context, chargeID string) (trace.Link, bool) {
	if s.cfg.Orders == nil || chargeID == "" {
		return trace.Link{}, false
	}
	tp := s.cfg.Orders.ChargeTraceParent(ctx, chargeID)
	if tp == "" {
		return trace.Link{}, false
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp}))
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("link.kind", "checkout")}}, true
}

// applyType acts on the event by its type.
func (s *Service) applyType(ctx context.Context, e event) (string, string, error) {
	switch e.Type {
	case TypeSucceeded, TypePaymentFailed, TypeCanceled:
		found, err := s.cfg.Settler.SettleCharge(ctx, e.ChargeID)
		return s.settled(e, found, OutcomeSettled, err)
	case TypeRefunded:
		if s.cfg.Orders == nil {
			return stateIgnored, OutcomeUnhandledType, nil
		}
		found, err := s.cfg.Orders.RefundedOutside(ctx, e.ChargeID, money.Money{Amount: e.AmountRefunded, Currency: e.Currency})
		return s.settled(e, found, OutcomeRefundApplied, err)
	case TypeDisputeClosed:
		if e.ObjectStatus != "lost" || s.cfg.Orders == nil {
			return stateProcessed, OutcomeRecorded, nil
		}
		found, err := s.cfg.Orders.DisputeLost(ctx, e.ChargeID, e.ObjectID)
		return s.settled(e, found, OutcomeDisputeLost, err)
	case TypeDisputeOpened:
		return stateProcessed, OutcomeRecorded, nil
	}
	return stateIgnored, OutcomeUnhandledType, nil
}

// settled maps an effect's answer to the event's state: done; not found
// (Godwit's charge: its checkout may not be recorded yet, so wait; anyone
// else's: ignore); or failed (retry).
func (s *Service) settled(e event, found bool, done string, err error) (string, string, error) {
	switch {
	case err != nil:
		return statePending, OutcomeError, err
	case found:
		return stateProcessed, done, nil
	case e.Godwit:
		return statePending, OutcomeWaitingCheckout, nil
	}
	return stateIgnored, OutcomeUnknownIntent, nil
}

// RetryPass is the stripe_webhook_retry job: it processes the pending events
// whose retry is due (those waiting for their checkout, those that failed,
// and those whose attempt died with its process). Safe on every replica:
// each event is claimed by a conditional update before it is processed.
func (s *Service) RetryPass(ctx context.Context) error {
	ids, err := s.due(ctx, 100)
	if err != nil {
		return err
	}
	var errsOut []error
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		if _, err := s.process(ctx, id, true); err != nil && !errors.Is(err, errNotHeld) {
			errsOut = append(errsOut, err)
		}
	}
	return errors.Join(errsOut...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
