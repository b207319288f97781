package payment

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// The simulator's test tokens.
const (
	TokenVisa                      = "tok_visa"
	TokenMastercard                = "tok_mastercard"
	TokenDeclined                  = "tok_chargeDeclined"
	TokenDeclinedInsufficientFunds = "tok_chargeDeclinedInsufficientFunds"
	TokenDeclinedLostCard          = "tok_chargeDeclinedLostCard"
	TokenDeclinedProcessingError   = "tok_chargeDeclinedProcessingError"
	TokenSlow                      = "tok_slow"
	// TokenThreeDSecure always asks for authentication (Stripe's test token
	// of the same name): the charge answers requires_action until
	// Authenticate settles it.
	TokenThreeDSecure = "tok_threeDSecure2Required"
)

var simulatedDeclines = map[string]DeclineError{
	TokenDeclined:                  {Code: "generic_decline"},
	TokenDeclinedInsufficientFunds: {Code: "insufficient_funds"},
	TokenDeclinedLostCard:          {Code: "lost_card"},
	TokenDeclinedProcessingError:   {Code: "processing_error", Soft: true},
}

// SoftDeclineCodes are the decline codes the simulator reports as soft.
var SoftDeclineCodes = map[string]bool{"processing_error": true}

// FaultPointCharge is the simulator's fault point: latency and a decline rate
// on every charge.
const FaultPointCharge = "payment.charge"

// Faults are the simulator's injected faults, shared by every replica, as GET
// and PUT /v1/admin/faults/payment show them (the fault point payment.charge).
type Faults struct {
	LatencyMS          int64  `json:"latency_ms"`
	DeclineRatePercent int64  `json:"decline_rate_percent"`
	DeclineCode        string `json:"decline_code"`
}

// SimulatorConfig tunes the Simulator.
type SimulatorConfig struct {
	DB  *db.DB
	Now func() time.Time
	// SlowDelay is the extra latency of tok_slow; default 3s.
	SlowDelay time.Duration
	// Faults holds the simulator's fault point; nil: a store of its own.
	Faults *faults.Store
}

// Simulator is the built-in payment gateway. Its charges live in the database.
type Simulator struct {
	db     *db.DB
	now    func() time.Time
	slow   time.Duration
	faults *faults.Store

	hookMu  sync.Mutex
	settled []func(Charge)
}

// OnSettled registers fn to be called, outside any lock or transaction, every
// time a charge reaches succeeded, declined, voided (cancelled), partially
// refunded or refunded through this Simulator: the simulated webhooks
// subscribe here. fn must not block for long; it runs on the caller's goroutine.
func (s *Simulator) OnSettled(fn func(Charge)) {
	s.hookMu.Lock()
	s.settled = append(s.settled, fn)
	s.hookMu.Unlock()
}

func (s *Simulator) notify(c Charge) {
	s.hookMu.Lock()
	hooks := append([]func(Charge){}, s.settled...)
	s.hookMu.Unlock()
	for _, fn := range hooks {
		fn(c)
	}
}

// NewSimulator returns a Simulator and registers its fault point.
func NewSimulator(cfg SimulatorConfig) *Simulator {
	defaults.Fill(defaults.Fields{Now: &cfg.Now})
	if cfg.SlowDelay <= 0 {
		cfg.SlowDelay = 3 * time.Second
	}
	if cfg.Faults == nil {
		cfg.Faults = faults.NewStore(faults.Config{DB: cfg.DB, Now: cfg.Now})
	}
	cfg.Faults.Register(faults.Point{Name: FaultPointCharge, Summary: "Slows down or declines the payment simulator's charges",
		Default: faults.Settings{DeclineCode: "generic_decline"}, Delay: true, Decline: true})
	return &Simulator{db: cfg.DB, now: cfg.Now, slow: cfg.SlowDelay, faults: cfg.Faults}
}

// Name implements Provider.
func (s *Simulator) Name() string { return "payment-simulator" }

// Faults returns the current fault settings.
func (s *Simulator) Faults(ctx context.Context) (Faults, error) {
	f, err := s.faults.Read(ctx, FaultPointCharge)
	if err != nil {
		return Faults{}, fmt.Errorf("payment: read faults: %w", err)
	}
	return Faults{LatencyMS: f.DelayMS, DeclineRatePercent: f.DeclineRatePercent, DeclineCode: f.DeclineCode}, nil
}

// SetFaults replaces the fault settings.
func (s *Simulator) SetFaults(ctx context.Context, f Faults) (Faults, error) {
	if f.DeclineCode == "" {
		f.DeclineCode = "generic_decline"
	}
	switch {
	case f.LatencyMS < 0 || f.LatencyMS > 60_000:
		return Faults{}, errs.Coded(errs.Invalid, "invalid_field", "latency_ms must be between 0 and 60000").With("field", "latency_ms")
	case f.DeclineRatePercent < 0 || f.DeclineRatePercent > 100:
		return Faults{}, errs.Coded(errs.Invalid, "invalid_field", "decline_rate_percent must be between 0 and 100").With("field", "decline_rate_percent")
	case len(f.DeclineCode) > 64 || strings.ContainsAny(f.DeclineCode, " \t\r\n"):
		return Faults{}, errs.Coded(errs.Invalid, "invalid_field", "decline_code must be a short code such as generic_decline").With("field", "decline_code")
	}
	_, err := s.faults.Set(ctx, FaultPointCharge, faults.Settings{DelayMS: f.LatencyMS, DeclineRatePercent: f.DeclineRatePercent, DeclineCode: f.DeclineCode})
	if err != nil {
		return Faults{}, fmt.Errorf("payment: set faults: %w", err)
	}
	return f, nil
}

// sleep waits the injected latency (recorded on the span as a fault) and then
// tok_slow's delay.
func sleep(ctx context.Context, injected, slow time.Duration) error {
	err := faults.Sleep(ctx, FaultPointCharge, injected)
	if err == nil {
		err = faults.Wait(ctx, slow)
	}
	if err != nil {
		return errs.Coded(errs.Timeout, "gateway_timeout", "the payment gateway did not answer in time").Wrap(err)
	}
	return nil
}

const chargeColumns = `id, idempotency_key, amount, currency, status, decline_code, soft_decline, refunded_amount, created_at, client_secret`

func scanCharge(sc interface{ Scan(...any) error }) (Charge, bool, error) {
	var c Charge
	var soft bool
	var created int64
	err := sc.Scan(&c.ID, &c.IdempotencyKey, &c.Amount.Amount, &c.Amount.Currency, &c.Status, &c.DeclineCode, &soft, &c.Refunded.Amount, &created, &c.ClientSecret)
	c.Refunded.Currency = c.Amount.Currency
	c.CreatedAt = db.FromMicros(created)
	if c.Status == StatusRequiresAction {
		c.NextAction = simulatedNextAction(c)
	}
	return c, soft, err
}

// simulatedNextAction sends the customer to the simulated bank page, shaped as
// Stripe's redirect_to_url next action. The checkout id is the charge's
// idempotency key.
func simulatedNextAction(c Charge) json.RawMessage {
	q := url.Values{"client_secret": {c.ClientSecret}, "checkout_id": {c.IdempotencyKey}}
	b, _ := json.Marshal(map[string]any{"type": "redirect_to_url",
		"redirect_to_url": map[string]string{"url": "/authenticate.html?" + q.Encode()}})
	return b
}

func (s *Simulator) byKey(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, key string) (Charge, bool, error) {
	c, soft, err := scanCharge(q.QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM payment_charges WHERE idempotency_key = $1`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Charge{}, false, errs.Coded(errs.NotFound, CodeChargeNotFound, "no charge was made under this idempotency key")
	}
	if err != nil {
		return Charge{}, false, fmt.Errorf("payment: lookup: %w", err)
	}
	return c, soft, nil
}

func outcome(c Charge, soft bool) (Charge, error) {
	if c.Status == StatusDeclined {
		return Charge{}, &DeclineError{Code: c.DeclineCode, Soft: soft}
	}
	return c, nil
}

// Charge implements Provider.
func (s *Simulator) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	if req.IdempotencyKey == "" {
		return Charge{}, errs.Coded(errs.Invalid, "idempotency_key_required", "a charge needs an idempotency key")
	}
	if err := req.Amount.ValidatePositive(); err != nil {
		return Charge{}, errs.Coded(errs.Invalid, "invalid_amount", "a charge must be a positive amount").Wrap(err)
	}
	if c, soft, err := s.byKey(ctx, s.db.Read(), req.IdempotencyKey); err == nil {
		return outcome(c, soft)
	} else if !errs.Is(err, CodeChargeNotFound) {
		return Charge{}, err
	}
	f, err := s.faults.Get(ctx, FaultPointCharge)
	if err != nil {
		return Charge{}, fmt.Errorf("payment: read faults: %w", err)
	}
	var slow time.Duration
	var decline *DeclineError
	authenticate := false
	switch tok := req.Token; {
	case tok == TokenVisa || tok == TokenMastercard:
	case tok == TokenThreeDSecure:
		authenticate = true
	case tok == TokenSlow:
		slow = s.slow
	default:
		d, ok := simulatedDeclines[tok]
		if !ok {
			return Charge{}, errs.Coded(errs.Unprocessable, "invalid_payment_token", "the payment token is not one the simulator knows").With("field", "payment.token")
		}
		decline = &d
	}
	if decline == nil && f.DeclineRatePercent > 0 && rand.Int64N(100) < f.DeclineRatePercent {
		decline = &DeclineError{Code: f.DeclineCode, Soft: SoftDeclineCodes[f.DeclineCode]}
	}
	if err := sleep(ctx, f.Delay(), slow); err != nil {
		return Charge{}, err
	}
	now := s.now()
	c := Charge{ID: "ch_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:24], IdempotencyKey: req.IdempotencyKey, Amount: req.Amount,
		Status: StatusSucceeded, Refunded: money.Money{Currency: req.Amount.Currency}, CreatedAt: db.FromMicros(db.Micros(now))}
	soft := false
	switch {
	case decline != nil:
		c.Status, c.DeclineCode, soft = StatusDeclined, decline.Code, decline.Soft
	case authenticate:
		c.Status = StatusRequiresAction
		c.ClientSecret = c.ID + "_secret_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	case req.CaptureManual:
		c.Status = StatusAuthorized
	}
	var stored Charge
	var storedSoft, inserted bool
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		// A concurrent request with the same key may have won; its row is the answer.
		res, err := tx.ExecContext(ctx, `INSERT INTO payment_charges (id, idempotency_key, amount, currency, status, decline_code, soft_decline, created_at, updated_at, client_secret, capture_manual)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10) ON CONFLICT (idempotency_key) DO NOTHING`,
			c.ID, c.IdempotencyKey, c.Amount.Amount, c.Amount.Currency, c.Status, c.DeclineCode, soft, db.Micros(now), c.ClientSecret, req.CaptureManual)
		if err != nil {
			return fmt.Errorf("payment: record charge: %w", err)
		}
		n, _ := res.RowsAffected()
		inserted = n == 1
		stored, storedSoft, err = s.byKey(ctx, tx, req.IdempotencyKey)
		return err
	})
	if err != nil {
		return Charge{}, err
	}
	if inserted && stored.Status != StatusRequiresAction {
		s.notify(stored)
	}
	return outcome(stored, storedSoft)
}

// Retrieve implements Provider.
func (s *Simulator) Retrieve(ctx context.Context, chargeID string) (Charge, error) {
	c, _, err := scanCharge(s.db.Read().QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM payment_charges WHERE id = $1`, chargeID))
	if errors.Is(err, sql.ErrNoRows) {
		return Charge{}, errs.Coded(errs.NotFound, CodeChargeNotFound, "charge %s does not exist", chargeID)
	}
	if err != nil {
		return Charge{}, fmt.Errorf("payment: charge %s: %w", chargeID, err)
	}
	return c, nil
}

// Authenticate is the customer's answer on the simulated bank page for the
// charge with clientSecret: approved, the charge succeeds; refused, it is
// declined with DeclineAuthenticationFailed. An unknown secret is errs
// NotFound CodeChargeNotFound; a charge not waiting for authentication is errs
// Conflict CodeChargeNotWaiting.
func (s *Simulator) Authenticate(ctx context.Context, clientSecret string, approve bool) (Charge, error) {
	if clientSecret == "" {
		return Charge{}, errs.Coded(errs.Invalid, "invalid_field", "client_secret is required").With("field", "client_secret")
	}
	var out Charge
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var manual bool
		err := tx.QueryRowContext(ctx, `SELECT capture_manual FROM payment_charges WHERE client_secret = $1`+tx.ForUpdate(), clientSecret).Scan(&manual)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.Coded(errs.NotFound, CodeChargeNotFound, "no charge has this client secret")
		}
		if err != nil {
			return fmt.Errorf("payment: authenticate: %w", err)
		}
		c, _, err := scanCharge(tx.QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM payment_charges WHERE client_secret = $1`, clientSecret))
		if errors.Is(err, sql.ErrNoRows) {
			return errs.Coded(errs.NotFound, CodeChargeNotFound, "no charge has this client secret")
		}
		if err != nil {
			return fmt.Errorf("payment: authenticate: %w", err)
		}
		if c.Status != StatusRequiresAction {
			return errs.Coded(errs.Conflict, CodeChargeNotWaiting, "the charge is %s, not waiting for authentication", c.Status)
		}
		c.Status, c.DeclineCode, c.NextAction = StatusSucceeded, "", nil
		if manual {
			c.Status = StatusAuthorized
		}
		if !approve {
			c.Status, c.DeclineCode = StatusDeclined, DeclineAuthenticationFailed
		}
		if _, err := tx.ExecContext(ctx, `UPDATE payment_charges SET status = $2, decline_code = $3, updated_at = $4 WHERE id = $1`,
			c.ID, c.Status, c.DeclineCode, db.Micros(s.now())); err != nil {
			return fmt.Errorf("payment: authenticate: %w", err)
		}
		out = c
		return nil
	})
	if err != nil {
		return Charge{}, err
	}
	s.notify(out)
	return out, nil
}

// Cancel implements Provider: a charge waiting for authentication becomes
// voided; a voided or declined one is left as it is.
func (s *Simulator) Cancel(ctx context.Context, chargeID string) error {
	var out Charge
	changed := false
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		changed = false
		c, err := s.byID(ctx, tx, chargeID)
		if err != nil {
			return err
		}
		switch c.Status {
		case StatusVoided, StatusDeclined:
		case StatusRequiresAction:
			if _, err := tx.ExecContext(ctx, `UPDATE payment_charges SET status = 'voided', updated_at = $2 WHERE id = $1`, chargeID, db.Micros(s.now())); err != nil {
				return fmt.Errorf("payment: cancel: %w", err)
			}
			c.Status, c.NextAction, changed = StatusVoided, nil, true
		default:
			return errs.Coded(errs.Conflict, CodeChargeNotCancelable, "a %s charge cannot be cancelled", c.Status)
		}
		out = c
		return nil
	})
	if err == nil && changed {
		s.notify(out)
	}
	return err
}

// Lookup implements Provider.
func (s *Simulator) Lookup(ctx context.Context, key string) (Charge, error) {
	c, _, err := s.byKey(ctx, s.db.Read(), key)
	return c, err
}

func (s *Simulator) byID(ctx context.Context, tx *db.Tx, id string) (Charge, error) {
	c, _, err := scanCharge(tx.QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM payment_charges WHERE id = $1`+tx.ForUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Charge{}, errs.Coded(errs.NotFound, CodeChargeNotFound, "charge %s does not exist", id)
	}
	if err != nil {
		return Charge{}, fmt.Errorf("payment: charge %s: %w", id, err)
	}
	return c, nil
}

// Void implements Provider: a succeeded, unrefunded charge becomes voided.
func (s *Simulator) Void(ctx context.Context, chargeID string) (Charge, error) {
	var out Charge
	changed := false
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		changed = false
		c, err := s.byID(ctx, tx, chargeID)
		if err != nil {
			return err
		}
		switch c.Status {
		case StatusVoided:
		case StatusSucceeded, StatusRequiresAction, StatusAuthorized:
			if _, err := tx.ExecContext(ctx, `UPDATE payment_charges SET status = 'voided', updated_at = $2 WHERE id = $1`, chargeID, db.Micros(s.now())); err != nil {
				return fmt.Errorf("payment: void: %w", err)
			}
			c.Status, c.NextAction, changed = StatusVoided, nil, true
		default:
			return errs.Coded(errs.Conflict, "charge_not_voidable", "a %s charge cannot be voided", c.Status)
		}
		out = c
		return nil
	})
	if err == nil && changed {
		s.notify(out)
	}
	return out, err
}

// Capture implements Provider: an authorized charge becomes succeeded for
// amount (at most what was authorised), the rest of the authorisation being
// released, as a card network's partial capture does. A charge already
// captured for amount is returned as it is.
func (s *Simulator) Capture(ctx context.Context, chargeID string, amount money.Money, _ string) (Charge, error) {
	if err := amount.ValidatePositive(); err != nil {
		return Charge{}, errs.Coded(errs.Invalid, "invalid_amount", "a capture must be a positive amount").Wrap(err)
	}
	var out Charge
	changed := false
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		changed = false
		c, err := s.byID(ctx, tx, chargeID)
		if err != nil {
			return err
		}
		switch {
		case c.Status == StatusAuthorized:
			if amount.Currency != c.Amount.Currency || amount.Amount > c.Amount.Amount {
				return errs.Coded(errs.Unprocessable, "capture_exceeds_authorization", "at most %s can be captured", c.Amount)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE payment_charges SET status = 'succeeded', amount = $2, updated_at = $3 WHERE id = $1`,
				chargeID, amount.Amount, db.Micros(s.now())); err != nil {
				return fmt.Errorf("payment: capture: %w", err)
			}
			c.Status, c.Amount.Amount, changed = StatusSucceeded, amount.Amount, true
		case c.Status == StatusSucceeded && c.Amount == amount:
		default:
			return errs.Coded(errs.Conflict, CodeChargeNotCapturable, "a %s charge of %s cannot be captured for %s", c.Status, c.Amount, amount)
		}
		out = c
		return nil
	})
	if err == nil && changed {
		s.notify(out)
	}
	return out, err
}

// Refund implements Provider.
func (s *Simulator) Refund(ctx context.Context, chargeID string, amount money.Money, key string) (Refund, error) {
	if err := amount.ValidatePositive(); err != nil {
		return Refund{}, errs.Coded(errs.Invalid, "invalid_amount", "a refund must be a positive amount").Wrap(err)
	}
	var out Refund
	var settled *Charge
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		settled = nil
		var rf Refund
		err := tx.QueryRowContext(ctx, `SELECT id, charge_id, amount FROM payment_refunds WHERE idempotency_key = $1`, key).Scan(&rf.ID, &rf.ChargeID, &rf.Amount.Amount)
		if err == nil {
			if rf.ChargeID != chargeID || rf.Amount.Amount != amount.Amount {
				return errs.Coded(errs.Unprocessable, "idempotency_key_reused", "this refund key was used for a different refund")
			}
			rf.Amount.Currency = amount.Currency
			out = rf
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("payment: refund lookup: %w", err)
		}
		c, err := s.byID(ctx, tx, chargeID)
		if err != nil {
			return err
		}
		if c.Status != StatusSucceeded && c.Status != StatusPartiallyRefunded {
			return errs.Coded(errs.Conflict, "charge_not_refundable", "a %s charge cannot be refunded", c.Status)
		}
		if amount.Currency != c.Amount.Currency || amount.Amount > c.Amount.Amount-c.Refunded.Amount {
			return errs.Coded(errs.Unprocessable, "refund_exceeds_charge", "at most %s can be refunded",
				money.Money{Amount: c.Amount.Amount - c.Refunded.Amount, Currency: c.Amount.Currency})
		}
		refunded := c.Refunded.Amount + amount.Amount
		status := StatusPartiallyRefunded
		if refunded == c.Amount.Amount {
			status = StatusRefunded
		}
		now := db.Micros(s.now())
		rf = Refund{ID: "re_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:24], ChargeID: chargeID, Amount: amount}
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_refunds (id, charge_id, idempotency_key, amount, created_at) VALUES ($1, $2, $3, $4, $5)`,
			rf.ID, chargeID, key, amount.Amount, now); err != nil {
			return fmt.Errorf("payment: record refund: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE payment_charges SET refunded_amount = $2, status = $3, updated_at = $4 WHERE id = $1`,
			chargeID, refunded, status, now); err != nil {
			return fmt.Errorf("payment: record refund: %w", err)
		}
		out = rf
		c.Status, c.Refunded.Amount = status, refunded
		settled = &c
		return nil
	})
	if err == nil && settled != nil {
		s.notify(*settled)
	}
	return out, err
}
