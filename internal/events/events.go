// Package events is Godwit's event catalogue and its transactional outbox:
// every business fact (a member enrolled, points earned, an order confirmed…)
// is a CloudEvents 1.0 event, written as a row of the events table in the same
// database transaction as the change it reports, and delivered after the
// commit (webhooks, NATS). A rolled-back change leaves no event; a crash
// after the commit loses none, and every delivery of an event carries its id,
// so consumers de-duplicate by id.
//
// Events carry the W3C trace context of the request that caused them in the
// CloudEvents distributed-tracing extension (traceparent, tracestate).
//
// The JSON format is implemented here from the CloudEvents 1.0 specification
// and its JSON event format (a few dozen lines; the official SDK would bring
// a JSON library and a logger of its own); TestCloudEventsRequiredAttributes
// holds it to the specification's required attributes.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// Event types: the catalogue. docs/events.md describes each, and
// schemas/<type>.schema.json is its JSON Schema.
const (
	MemberCreated     = "member.created"
	PointsEarned      = "points.earned"
	PointsRedeemed    = "points.redeemed"
	PointsTransferred = "points.transferred"
	PointsReversed    = "points.reversed"
	PointsExpired     = "points.expired"
	PointsExpiring    = "points.expiring"
	TierChanged       = "tier.changed"
	OrderConfirmed    = "order.confirmed"
	OrderRefunded     = "order.refunded"
	CheckoutFailed    = "checkout.failed"
	// WebhookDisabled reports a webhook subscription the delivery worker
	// disabled because its endpoint kept failing.
	WebhookDisabled = "webhook.subscription_disabled"
)

// Types lists the catalogue, in the order docs/events.md presents it.
var Types = []string{
	MemberCreated, PointsEarned, PointsRedeemed, PointsTransferred, PointsReversed,
	PointsExpired, PointsExpiring, TierChanged, OrderConfirmed, OrderRefunded,
	CheckoutFailed, WebhookDisabled,
}

// IsType reports whether t is in the catalogue.
func IsType(t string) bool {
	for _, c := range Types {
		if c == t {
			return true
		}
	}
	return false
}

// Sources: the CloudEvents source of each producer, a URI reference.
const (
	SourceLoyalty  = "/godwit/loyalty"
	SourceCheckout = "/godwit/checkout"
	SourceOrders   = "/godwit/orders"
	SourceWebhooks = "/godwit/webhooks"
)

// Event is one business fact. ID is stable: it is assigned when the event is
// written and every delivery carries it.
type Event struct {
	ID      string
	Type    string
	Source  string
	Subject string // the member or order (or subscription) the fact is about
	Time    time.Time
	Data    json.RawMessage // a JSON object, the type's data schema
	// TraceParent and TraceState are the W3C trace context of the request
	// that caused the event; empty when none was recorded.
	TraceParent, TraceState string
}

var traceContext = propagation.TraceContext{}

// New returns an event of type typ about subject, with a new id, data
// marshalled to JSON and the trace context of ctx.
func New(ctx context.Context, typ, source, subject string, at time.Time, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("events: %s: %w", typ, err)
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	return Event{
		ID: NewID(), Type: typ, Source: source, Subject: subject, Time: at.UTC().Truncate(time.Microsecond),
		Data: raw, TraceParent: carrier.Get("traceparent"), TraceState: carrier.Get("tracestate"),
	}, nil
}

// NewID returns a new event id.
func NewID() string { return "evt_" + strings.ReplaceAll(uuid.NewString(), "-", "") }

// TraceContext returns ctx carrying the event's trace context as its remote
// parent (ctx itself when the event has none).
func (e Event) TraceContext(ctx context.Context) context.Context {
	if e.TraceParent == "" {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": e.TraceParent, "tracestate": e.TraceState})
}

// wire is the CloudEvents JSON event format of an Event.
type wire struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	TraceParent     string          `json:"traceparent,omitempty"`
	TraceState      string          `json:"tracestate,omitempty"`
}

// MarshalJSON encodes e in the CloudEvents JSON event format.
func (e Event) MarshalJSON() ([]byte, error) {
	w := wire{SpecVersion: SpecVersion, ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject,
		TraceParent: e.TraceParent, TraceState: e.TraceState}
	if !e.Time.IsZero() {
		w.Time = e.Time.UTC().Format(time.RFC3339Nano)
	}
	if len(e.Data) > 0 {
		w.DataContentType, w.Data = "application/json", e.Data
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes an event in the CloudEvents JSON event format and
// checks the required attributes (specversion 1.0, id, source, type).
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	switch {
	case w.SpecVersion != SpecVersion:
		return fmt.Errorf("events: specversion %q, want %q", w.SpecVersion, SpecVersion)
	case w.ID == "" || w.Source == "" || w.Type == "":
		return errors.New("events: id, source and type are required")
	}
	*e = Event{ID: w.ID, Type: w.Type, Source: w.Source, Subject: w.Subject, Data: w.Data,
		TraceParent: w.TraceParent, TraceState: w.TraceState}
	if w.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			return fmt.Errorf("events: time: %w", err)
		}
		e.Time = t
	}
	return nil
}
