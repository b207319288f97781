package stripehook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// The simulated webhooks' fault points, set like every other fault point
// (PUT /v1/admin/faults/{point}).
const (
	// FaultPointDelay delays every simulated event by its delay_ms.
	FaultPointDelay = "payment.webhook.delay"
	// FaultPointDuplicate, when on (fail: true), delivers every simulated
	// event twice, as Stripe may.
	FaultPointDuplicate = "payment.webhook.duplicate"
	// FaultPointReorder, when on (fail: true), holds each simulated event
	// back until the next one has been delivered (or ReorderHold has passed),
	// so events arrive out of order.
	FaultPointReorder = "payment.webhook.reorder"
)

// ReorderHold is the longest a held-back event waits for the next one.
const ReorderHold = 2 * time.Second

// SenderConfig holds a Sender's dependencies.
type SenderConfig struct {
	// Secret signs the events: the endpoint's first signing secret.
	Secret string
	// Faults holds the sender's fault points (registered by NewSender).
	Faults *faults.Store
	Logger *slog.Logger
}

// Sender delivers the payment simulator's settled charges to this
// process's own POST /v1/webhooks/stripe as Stripe-shaped events, signed as
// Stripe signs them, so the webhook path runs without Stripe. Subscribe
// Settled to payment.Simulator.OnSettled and give it the process's handler
// with SetTarget. Deliveries run on their own goroutines; Close waits for them.
type Sender struct {
	cfg    SenderConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	target http.Handler
	held   []byte // the event held back by the reorder fault
	heldAt uint64 // which hold it is, so its timer does not release a later one
	holds  uint64
}

// NewSender returns a Sender and registers its fault points.
func NewSender(cfg SenderConfig) *Sender {
	defaults.Fill(defaults.Fields{Logger: &cfg.Logger})
	cfg.Faults.Register(
		faults.Point{Name: FaultPointDelay, Summary: "Delays every simulated Stripe webhook event by delay_ms", Delay: true},
		faults.Point{Name: FaultPointDuplicate, Summary: "With fail on, delivers every simulated Stripe webhook event twice", Fail: true},
		faults.Point{Name: FaultPointReorder, Summary: "With fail on, holds each simulated Stripe webhook event back until the next one is delivered (at most 2 s)", Fail: true},
	)
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel}
}

// SetTarget sets the handler events are delivered through (the process's
// whole HTTP surface, so a delivery is routed and traced as Stripe's is).
func (s *Sender) SetTarget(h http.Handler) {
	s.mu.Lock()
	s.target = h
	s.mu.Unlock()
}

// Close stops the deliveries not yet made and waits for those under way.
func (s *Sender) Close() {
	s.cancel()
	s.wg.Wait()
}

// Settled is the payment.Simulator.OnSettled hook: it queues the event
// the charge's new state makes and returns at once.
func (s *Sender) Settled(c payment.Charge) {
	payload, ok := simulatedEvent(c, time.Now())
	if !ok || s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.dispatch(payload)
	}()
}

// dispatch applies the fault settings to one event and delivers it.
func (s *Sender) dispatch(payload []byte) {
	ctx := s.ctx
	if d := s.setting(ctx, FaultPointDelay).Delay(); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
	if !s.setting(ctx, FaultPointReorder).Fail {
		s.deliver(payload)
		return
	}
	s.mu.Lock()
	if s.held == nil {
		s.holds++
		s.held, s.heldAt = payload, s.holds
		n := s.holds
		s.mu.Unlock()
		select {
		case <-time.After(ReorderHold):
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		if s.held != nil && s.heldAt == n {
			held := s.held
			s.held = nil
			s.mu.Unlock()
			s.deliver(held) // no next event came
			return
		}
		s.mu.Unlock()
		return
	}
	held := s.held
	s.held = nil
	s.mu.Unlock()
	s.deliver(payload)
	s.deliver(held)
}

func (s *Sender) setting(ctx context.Context, point string) faults.Settings {
	st, err := s.cfg.Faults.Get(ctx, point)
	if err != nil {
		return faults.Settings{}
	}
	return st.Settings
}

// deliver signs and posts one event (twice with the duplicate fault).
func (s *Sender) deliver(payload []byte) {
	s.mu.Lock()
	h := s.target
	s.mu.Unlock()
	if h == nil || s.ctx.Err() != nil {
		return
	}
	times := 1
	if s.setting(s.ctx, FaultPointDuplicate).Fail {
		times = 2
	}
	for range times {
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: s.cfg.Secret, Timestamp: time.Now()})
		req := httptest.NewRequestWithContext(s.ctx, http.MethodPost, Path, bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", signed.Header)
		req.Header.Set("User-Agent", "Godwit payment simulator (Stripe webhooks)")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			s.log.Warn("simulated Stripe webhook refused", "status", rec.Code, "body", truncate(rec.Body.String(), 300))
		}
	}
}

// simulatedEvent is the Stripe event a simulator charge's new state makes,
// with Stripe's shapes: a PaymentIntent for succeeded, declined (failed) and
// voided (canceled) charges, a Charge for a refund. Its id derives from the
// charge and the state, so the same state always makes the same event.
func simulatedEvent(c payment.Charge, now time.Time) ([]byte, bool) {
	var typ string
	obj := map[string]any{"id": c.ID, "object": "payment_intent", "amount": c.Amount.Amount, "currency": strings.ToLower(c.Amount.Currency),
		"metadata": map[string]string{MetadataKey: c.IdempotencyKey}, "livemode": false}
	switch c.Status {
	case payment.StatusSucceeded:
		typ, obj["status"] = TypeSucceeded, "succeeded"
	case payment.StatusDeclined:
		typ, obj["status"] = TypePaymentFailed, "requires_payment_method"
		obj["last_payment_error"] = map[string]any{"type": "card_error", "decline_code": c.DeclineCode}
	case payment.StatusVoided:
		typ, obj["status"] = TypeCanceled, "canceled"
	case payment.StatusRefunded, payment.StatusPartiallyRefunded:
		typ = TypeRefunded
		obj = map[string]any{"id": "ch_" + strings.TrimPrefix(c.ID, "ch_"), "object": "charge", "amount": c.Amount.Amount,
			"amount_refunded": c.Refunded.Amount, "currency": strings.ToLower(c.Amount.Currency), "payment_intent": c.ID,
			"refunded": c.Status == payment.StatusRefunded, "status": "succeeded", "metadata": map[string]string{MetadataKey: c.IdempotencyKey},
			"livemode": false}
	default:
		return nil, false // requires_action: nothing has happened yet
	}
	sum := sha256.Sum256([]byte(c.ID + "\x00" + typ + "\x00" + strconv.FormatInt(c.Refunded.Amount, 10)))
	b, err := json.Marshal(map[string]any{"id": "evt_sim_" + hex.EncodeToString(sum[:12]), "object": "event", "api_version": stripeapi.APIVersion,
		"created": now.Unix(), "type": typ, "livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": obj}})
	return b, err == nil
}
