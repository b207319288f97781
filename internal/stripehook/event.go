package stripehook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/godwit-dev/godwit/internal/errs"
)

// The event types processed; any other is recorded as ignored.
const (
	TypeSucceeded     = "payment_intent.succeeded"
	TypePaymentFailed = "payment_intent.payment_failed"
	TypeCanceled      = "payment_intent.canceled"
	TypeRefunded      = "charge.refunded"
	TypeDisputeOpened = "charge.dispute.created"
	TypeDisputeClosed = "charge.dispute.closed"
)

// MetadataKey is the PaymentIntent metadata key under which Godwit's Stripe
// provider stores the checkout id (payment/stripe.MetadataKey): an intent
// with it is Godwit's even before its checkout is found.
const MetadataKey = "godwit_idempotency_key"

// Problem codes of a refused delivery.
const (
	CodeNotConfigured    = "webhook_not_configured"
	CodeSignatureInvalid = "webhook_signature_invalid"
	CodeOutsideTolerance = "webhook_timestamp_outside_tolerance"
	CodeInvalidEvent     = "invalid_webhook_event"
)

// event is what is kept of a Stripe event: a stripe_events row.
type event struct {
	ID, Type       string
	ObjectID       string // the event's object: pi_…, ch_… or dp_…
	ChargeID       string // the payment intent: Godwit's charge id
	Godwit         bool   // the object carries Godwit's metadata
	Currency       string // upper case, as Godwit's money
	Amount         int64
	AmountRefunded int64
	ObjectStatus   string
	State, Outcome string
	Attempts       int
	Created        time.Time // when Stripe created the event
	Received       time.Time
}

// object is the part of an event's data.object that processing reads:
// a PaymentIntent, a Charge or a Dispute.
type object struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Amount         int64             `json:"amount"`
	AmountRefunded int64             `json:"amount_refunded"`
	Currency       string            `json:"currency"`
	Status         string            `json:"status"`
	PaymentIntent  json.RawMessage   `json:"payment_intent"` // an id, or the expanded object
	Charge         json.RawMessage   `json:"charge"`
	Metadata       map[string]string `json:"metadata"`
}

// verify checks the Stripe-Signature header against every configured secret
// and returns the event. A signature outside the tolerance window, or one
// no secret made, is a 400 that names which.
func (s *Service) verify(payload []byte, header string) (stripeapi.Event, error) {
	opts := webhook.ConstructEventOptions{Tolerance: s.cfg.Tolerance,
		// The few fields read here are the same in every API version, and a
		// rejected event would be retried by Stripe for three days.
		IgnoreAPIVersionMismatch: true}
	var last error
	for _, secret := range s.cfg.Secrets {
		ev, err := webhook.ConstructEventWithOptions(payload, header, secret, opts)
		if err == nil {
			return ev, nil
		}
		last = err
		switch {
		case errors.Is(err, webhook.ErrTooOld):
			return stripeapi.Event{}, errs.Coded(errs.Invalid, CodeOutsideTolerance,
				"the Stripe-Signature timestamp is older than the tolerance of %s", s.cfg.Tolerance).Wrap(err)
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue // maybe another secret made it
		case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
			return stripeapi.Event{}, errs.Coded(errs.Invalid, CodeSignatureInvalid, "the Stripe-Signature header is missing or malformed").Wrap(err)
		default:
			// Signed, but not an event we can read.
			return stripeapi.Event{}, errs.Coded(errs.Invalid, CodeInvalidEvent, "the payload is not a Stripe event").Wrap(err)
		}
	}
	return stripeapi.Event{}, errs.Coded(errs.Invalid, CodeSignatureInvalid, "no signing secret of this endpoint made the Stripe-Signature").Wrap(last)
}

// parse keeps what processing needs of a verified event.
func parse(ev stripeapi.Event, now time.Time) (event, error) {
	e := event{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0).UTC(), Received: now, State: statePending}
	if !strings.HasPrefix(e.ID, "evt_") || len(e.ID) > 255 || e.Type == "" || len(e.Type) > 100 {
		return event{}, errs.Coded(errs.Invalid, CodeInvalidEvent, "the event has no valid id or type")
	}
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		return event{}, errs.Coded(errs.Invalid, CodeInvalidEvent, "the event has no data.object")
	}
	var o object
	if err := json.Unmarshal(ev.Data.Raw, &o); err != nil {
		return event{}, errs.Coded(errs.Invalid, CodeInvalidEvent, "the event's data.object is not an object").Wrap(err)
	}
	e.ObjectID, e.Amount, e.AmountRefunded, e.ObjectStatus = o.ID, o.Amount, o.AmountRefunded, o.Status
	e.Currency = strings.ToUpper(o.Currency)
	_, e.Godwit = o.Metadata[MetadataKey]
	switch {
	case strings.HasPrefix(e.Type, "payment_intent."):
		e.ChargeID = o.ID
	case strings.HasPrefix(e.Type, "charge.dispute."):
		e.ChargeID = firstID(o.PaymentIntent, o.Charge)
	case strings.HasPrefix(e.Type, "charge."):
		e.ChargeID = firstID(o.PaymentIntent)
		if e.ChargeID == "" {
			e.ChargeID = o.ID // a charge made without an intent
		}
	}
	if len(e.ObjectID) > 255 || len(e.ChargeID) > 255 || len(e.ObjectStatus) > 100 || len(e.Currency) > 8 {
		return event{}, errs.Coded(errs.Invalid, CodeInvalidEvent, "the event's object has oversized fields")
	}
	return e, nil
}

// firstID returns the first of raws that is an id, or an expanded object's id.
func firstID(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var id string
		if json.Unmarshal(raw, &id) == nil && id != "" {
			return id
		}
		var o struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &o) == nil && o.ID != "" {
			return o.ID
		}
	}
	return ""
}

func (e event) String() string { return fmt.Sprintf("%s (%s)", e.ID, e.Type) }
