package checkout

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

const (
	stateInProgress = "in_progress"
	// stateRequiresAction: the charge waits for the customer to
	// authenticate (3-D Secure); stock and points stay held until the
	// authentication window ends (action_expires_at).
	stateRequiresAction = "requires_action"
	stateCompleted      = "completed"
	stateFailed         = "failed"
)

// lineItem is a validated cart line as stored with the checkout.
type lineItem struct {
	ProductID string      `json:"product_id"`
	Quantity  int64       `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
}

func toLines(items []cart.Item) []lineItem {
	out := make([]lineItem, len(items))
	for i, it := range items {
		out[i] = lineItem{ProductID: it.ProductID, Quantity: it.Quantity, UnitPrice: it.UnitPrice}
	}
	return out
}

// record is a checkouts row: the saga's durable state.
type record struct {
	ID, CartID, MemberID, Email, RequestHash string
	State, Step                              string
	Total, PointsAmount                      money.Money
	PointsRedeemed                           int64
	Items                                    []lineItem
	ReservationID, HoldID, ChargeID, OrderID string
	PointsEarned                             int64
	FailureStep, FailureKind, FailureCode    string
	FailureMessage                           string
	FailureDetails                           map[string]any
	TraceID, TraceParent                     string
	LeaseToken                               string
	// ActionExpiresAt (Unix microseconds) ends the authentication window of
	// a checkout that waited for 3-D Secure; 0 if it never waited.
	ActionExpiresAt int64
	// ClientSecretHash is the SHA-256 of the waiting charge's client secret:
	// a guest shows the secret to read or confirm the checkout.
	ClientSecretHash string
	// pending is the charge a saga just made that waits for authentication
	// (not stored).
	pending *payment.Charge
	// lease is the lease this process holds (not read back from the row);
	// nil until begin, claim or save writes one.
	lease *leaseState
	// stored is State as last read from or written to the row: save
	// records checkout.failed when it moves the row from in_progress.
	stored string
}

func (r *record) cash() (money.Money, error) {
	pa := r.PointsAmount
	if pa.Currency == "" {
		pa.Currency = r.Total.Currency
	}
	c, err := r.Total.Sub(pa)
	if err != nil || c.Amount < 0 {
		return money.Money{}, errs.New(errs.Internal, "checkout amounts are inconsistent").Wrap(fmt.Errorf("total %s, points %s: %v", r.Total, pa, err))
	}
	return c, nil
}

func (r *record) result() Result {
	cash, _ := r.cash()
	return Result{CheckoutID: r.ID, OrderID: r.OrderID, Status: string(order.Confirmed), Total: r.Total, Charged: cash,
		PointsEarned: r.PointsEarned, PointsRedeemed: r.PointsRedeemed, TraceID: r.TraceID}
}

func (r *record) failure() error {
	e := errs.Coded(errs.Kind(r.FailureKind), r.FailureCode, "%s", r.FailureMessage)
	for k, v := range r.FailureDetails {
		e = e.With(k, v)
	}
	return e.With("failure_step", r.FailureStep)
}

func requestHash(req Request) string {
	sum := sha256.Sum256([]byte(req.CartID + "\x00" + req.MemberID + "\x00" + strconv.FormatInt(req.PointsToRedeem, 10)))
	return hex.EncodeToString(sum[:])
}

const recordColumns = `id, cart_id, member_id, email, request_hash, state, step, currency, total_amount, points_redeemed, points_amount, items,
	reservation_id, points_hold_id, charge_id, order_id, points_earned, failure_step, failure_kind, failure_code, failure_message,
	trace_id, traceparent, lease_token, action_expires_at, client_secret_hash`

type scanner interface{ Scan(...any) error }

func scanRecord(sc scanner) (*record, error) {
	r := &record{}
	var items, failure string
	err := sc.Scan(&r.ID, &r.CartID, &r.MemberID, &r.Email, &r.RequestHash, &r.State, &r.Step, &r.Total.Currency, &r.Total.Amount,
		&r.PointsRedeemed, &r.PointsAmount.Amount, &items, &r.ReservationID, &r.HoldID, &r.ChargeID, &r.OrderID, &r.PointsEarned,
		&r.FailureStep, &r.FailureKind, &r.FailureCode, &failure, &r.TraceID, &r.TraceParent, &r.LeaseToken,
		&r.ActionExpiresAt, &r.ClientSecretHash)
	if err != nil {
		return nil, err
	}
	r.PointsAmount.Currency = r.Total.Currency
	r.stored = r.State
	if items != "" {
		if err := json.Unmarshal([]byte(items), &r.Items); err != nil {
			return nil, fmt.Errorf("checkout %s: items: %w", r.ID, err)
		}
	}
	var f storedFailure
	if failure != "" && json.Unmarshal([]byte(failure), &f) == nil {
		r.FailureMessage, r.FailureDetails = f.Message, f.Details
	}
	return r, nil
}

// storedFailure is the failure_message column: the client-safe message and the
// problem details, so a replay returns the same problem.
type storedFailure struct {
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// begin inserts the checkout's row, or returns the existing one for the same id.
func (s *Service) begin(ctx context.Context, req Request, traceID string) (*record, error) {
	hash := requestHash(req)
	rec := &record{ID: req.CheckoutID, CartID: req.CartID, MemberID: req.MemberID, Email: req.Email, RequestHash: hash,
		State: stateInProgress, stored: stateInProgress, Step: StepInitiated, PointsRedeemed: req.PointsToRedeem, TraceID: traceID,
		TraceParent: traceparent(ctx), LeaseToken: uuid.NewString()}
	var existing *record
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		existing = nil
		now := s.cfg.Now()
		rec.setLease(now.Add(s.cfg.Lease))
		res, err := tx.ExecContext(ctx, `INSERT INTO checkouts (id, cart_id, member_id, email, request_hash, state, step, points_redeemed,
			trace_id, traceparent, lease_token, lease_until, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'in_progress', 'initiated', $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (id) DO NOTHING`,
			rec.ID, rec.CartID, rec.MemberID, rec.Email, hash, rec.PointsRedeemed, rec.TraceID, rec.TraceParent, rec.LeaseToken,
			rec.lease.until.Load(), db.Micros(now))
		if err != nil {
			return fmt.Errorf("checkout: begin: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		existing, err = scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM checkouts WHERE id = $1`, rec.ID))
		if err != nil {
			return fmt.Errorf("checkout: begin: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return rec, nil
	}
	if existing.RequestHash != hash {
		return nil, errs.Coded(errs.Unprocessable, "idempotency_key_reused", "this Idempotency-Key was already used for a different checkout")
	}
	if existing.State == stateInProgress {
		return nil, errInProgress()
	}
	return existing, nil
}

// save writes the record's progress. It only succeeds while this process holds
// the checkout's lease (a recovery pass elsewhere may have taken it over), and
// it extends the lease.
func (s *Service) save(ctx context.Context, r *record) error {
	items := ""
	if r.Items != nil {
		b, err := json.Marshal(r.Items)
		if err != nil {
			return fmt.Errorf("checkout: encode items: %w", err)
		}
		items = string(b)
	}
	failure := ""
	if r.FailureCode != "" {
		b, err := json.Marshal(storedFailure{Message: r.FailureMessage, Details: r.FailureDetails})
		if err != nil {
			return fmt.Errorf("checkout: encode failure: %w", err)
		}
		failure = string(b)
	}
	var leaseUntil time.Time
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := s.cfg.Now()
		leaseUntil = now.Add(s.cfg.Lease)
		res, err := tx.ExecContext(ctx, `UPDATE checkouts SET state = $3, step = $4, currency = $5, total_amount = $6, points_redeemed = $7,
			points_amount = $8, items = $9, reservation_id = $10, points_hold_id = $11, charge_id = $12, order_id = $13, points_earned = $14,
			failure_step = $15, failure_kind = $16, failure_code = $17, failure_message = $18, lease_until = $19, updated_at = $20,
			action_expires_at = $21, client_secret_hash = $22
			WHERE id = $1 AND lease_token = $2`,
			r.ID, r.LeaseToken, r.State, r.Step, r.Total.Currency, r.Total.Amount, r.PointsRedeemed, r.PointsAmount.Amount, items,
			r.ReservationID, r.HoldID, r.ChargeID, r.OrderID, r.PointsEarned, r.FailureStep, r.FailureKind, r.FailureCode, failure,
			db.Micros(leaseUntil), db.Micros(now), r.ActionExpiresAt, r.ClientSecretHash)
		if err != nil {
			return fmt.Errorf("checkout: save: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errors.New("checkout: lease lost to another process")
		}
		return s.failedEvent(ctx, tx, r)
	})
	if err != nil {
		return interrupted(r.Step, err)
	}
	r.setLease(leaseUntil)
	r.stored = r.State
	return nil
}

// failedEvent records checkout.failed when save moves r's row from in
// progress to failed (in save's transaction, under the checkout's lease).
func (s *Service) failedEvent(ctx context.Context, tx *db.Tx, r *record) error {
	if s.cfg.Events == nil || r.State != stateFailed || r.stored != stateInProgress {
		return nil
	}
	code, step := r.FailureCode, r.FailureStep
	if code == "" {
		code = "checkout_failed"
	}
	if step == "" {
		step = r.Step
	}
	e, err := events.New(ctx, events.CheckoutFailed, events.SourceCheckout, r.ID, s.cfg.Now(), events.CheckoutFailedData{
		CheckoutID: r.ID, MemberID: r.MemberID, FailedStep: step, Code: code})
	if err != nil {
		return err
	}
	return s.cfg.Events.Record(ctx, tx, e)
}

// Status is a checkout's recorded state, for tests and operators.
type Status struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	Step          string `json:"step"`
	FailureStep   string `json:"failure_step,omitempty"`
	FailureCode   string `json:"failure_code,omitempty"`
	OrderID       string `json:"order_id,omitempty"`
	ChargeID      string `json:"charge_id,omitempty"`
	ReservationID string `json:"reservation_id,omitempty"`
}

// Get returns a checkout's recorded state, or errs NotFound "checkout_not_found".
func (s *Service) Get(ctx context.Context, id string) (Status, error) {
	r, err := scanRecord(s.cfg.DB.Read().QueryRowContext(ctx, `SELECT `+recordColumns+` FROM checkouts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Status{}, errs.Coded(errs.NotFound, "checkout_not_found", "checkout %s does not exist", id)
	}
	if err != nil {
		return Status{}, fmt.Errorf("checkout: get %s: %w", id, err)
	}
	return Status{ID: r.ID, State: r.State, Step: r.Step, FailureStep: r.FailureStep, FailureCode: r.FailureCode,
		OrderID: r.OrderID, ChargeID: r.ChargeID, ReservationID: r.ReservationID}, nil
}
