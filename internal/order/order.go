// Package order keeps orders: what was bought, at what price, how it was paid
// (card and points), and its state (pending → paid → confirmed; cancelled;
// partially_refunded, refunded; with manual capture authorized → confirmed or
// cancelled at fulfilment, fulfil.go). An order is created once per checkout, in the
// same transaction as its confirmation's outbox row.
package order

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// CodeOrderNotFound is the error code when an order (by id or by checkout)
// does not exist.
const CodeOrderNotFound = "order_not_found"

// Status is an order's state.
type Status string

// The states.
const (
	Pending Status = "pending"
	// Authorized: the card payment is authorised, not captured; fulfilment
	// captures it (all or less) and confirms the order, or cancels it.
	Authorized        Status = "authorized"
	Paid              Status = "paid"
	Confirmed         Status = "confirmed"
	Cancelled         Status = "cancelled"
	PartiallyRefunded Status = "partially_refunded"
	Refunded          Status = "refunded"
)

// transitions is the state machine: from → allowed next states.
var transitions = map[Status][]Status{
	Pending:           {Paid, Cancelled},
	Authorized:        {Confirmed, Cancelled},
	Paid:              {Confirmed, Cancelled, PartiallyRefunded, Refunded},
	Confirmed:         {PartiallyRefunded, Refunded},
	PartiallyRefunded: {PartiallyRefunded, Refunded},
}

// CanTransition reports whether an order may move from one state to another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Item is one order line.
type Item struct {
	ProductID string      `json:"product_id"`
	SKU       string      `json:"sku,omitempty"`
	Name      string      `json:"name,omitempty"`
	Quantity  int64       `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
	// CancelledQuantity is how many of Quantity fulfilment cancelled (and
	// restocked); nothing was charged for them.
	CancelledQuantity int64 `json:"cancelled_quantity"`
}

// Order is a placed order.
type Order struct {
	ID             string      `json:"id"`
	CheckoutID     string      `json:"checkout_id"`
	MemberID       string      `json:"member_id,omitempty"`
	Status         Status      `json:"status"`
	Items          []Item      `json:"items"`
	Total          money.Money `json:"total"`
	PointsRedeemed int64       `json:"points_redeemed"`
	PointsAmount   money.Money `json:"points_amount"`
	Charged        money.Money `json:"charged"`
	ChargeID       string      `json:"-"`
	PointsEarned   int64       `json:"points_earned"`
	Refunded       money.Money `json:"refunded"`
	// Authorized is what was authorised on the card with manual capture
	// (zero otherwise); Charged is then what fulfilment captured of it.
	Authorized money.Money `json:"authorized"`
	// PointsReturned are points paid that fulfilment gave back because
	// cancelled lines were worth more than the card part.
	PointsReturned int64     `json:"points_returned"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Fulfilment is "", "started" (the plan is recorded) or "done".
	Fulfilment string `json:"-"`
}

// NewOrder is the input of Create.
type NewOrder struct {
	// ID is the new order's id, allocated by the checkout before it charges
	// (so the payment.process span can name the order); it must start with
	// "ord_". Empty means Create makes one up.
	ID             string
	CheckoutID     string
	MemberID       string
	Items          []Item
	Total          money.Money
	PointsRedeemed int64
	PointsAmount   money.Money
	Charged        money.Money
	ChargeID       string
	// AwaitFulfilment places the order authorized (manual capture): Charged
	// is authorised, not taken, and is recorded as Authorized.
	AwaitFulfilment bool
	// Confirmation, when set, is queued in the order's transaction; Body may
	// contain "{order_id}", replaced by the new order's id.
	Confirmation *notify.Message
}

// Config holds the Service's dependencies.
type Config struct {
	DB             *db.DB
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
	// Faults holds the order service's fault points (FaultPointCreate,
	// FaultPointCreated); nil: a store of its own.
	Faults *faults.Store
	// Events records order.confirmed and order.refunded in the transaction
	// of the change; nil: no events.
	Events EventRecorder
}

// EventRecorder writes business events inside the caller's transaction
// (events.Recorder).
type EventRecorder interface {
	Record(ctx context.Context, tx *db.Tx, evs ...events.Event) error
}

// Service manages orders.
type Service struct {
	db     *db.DB
	now    func() time.Time
	tracer trace.Tracer
	log    *slog.Logger
	faults *faults.Store
	events EventRecorder
}

// New returns an order Service.
func New(cfg Config) *Service {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	return &Service{db: cfg.DB, now: cfg.Now, log: cfg.Logger, faults: newFaults(cfg), events: cfg.Events,
		tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/order")}
}

// Create places the order for a checkout, paid, and queues its confirmation in
// the same transaction. It is idempotent on CheckoutID: a second call returns
// the first order.
func (s *Service) Create(ctx context.Context, no NewOrder) (Order, error) {
	ctx, span := s.tracer.Start(ctx, "order.create", trace.WithAttributes(
		attribute.Int("order.item_count", len(no.Items)),
		attribute.Int64("order.total", no.Total.Amount),
		attribute.String("order.currency", no.Total.Currency)))
	defer span.End()
	o, err := s.create(ctx, no)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Order{}, err
	}
	span.SetAttributes(attribute.String("order.id", o.ID), attribute.String("order.status", string(o.Status)))
	return o, nil
}

func (s *Service) create(ctx context.Context, no NewOrder) (Order, error) {
	if no.CheckoutID == "" || len(no.Items) == 0 {
		return Order{}, errs.Coded(errs.Invalid, "invalid_order", "an order needs a checkout id and items")
	}
	if no.ID != "" && !strings.HasPrefix(no.ID, "ord_") {
		return Order{}, errs.Coded(errs.Invalid, "invalid_order", "an order id starts with ord_")
	}
	var out Order
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		existing, err := byCheckout(ctx, tx, no.CheckoutID)
		if err == nil {
			out = existing
			return nil
		}
		if !errs.Is(err, CodeOrderNotFound) {
			return err
		}
		now := s.now()
		id := no.ID
		if id == "" {
			id = "ord_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:24]
		}
		status, charged, authorized := Paid, no.Charged.Amount, int64(0)
		if no.AwaitFulfilment {
			status, charged, authorized = Authorized, 0, no.Charged.Amount
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, checkout_id, member_id, status, currency, total_amount, points_redeemed, points_amount,
			charged_amount, charge_id, created_at, updated_at, authorized_amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)`,
			id, no.CheckoutID, no.MemberID, string(status), no.Total.Currency, no.Total.Amount, no.PointsRedeemed, no.PointsAmount.Amount,
			charged, no.ChargeID, db.Micros(now), authorized); err != nil {
			return fmt.Errorf("order: insert: %w", err)
		}
		for _, it := range no.Items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price_amount) VALUES ($1, $2, $3, $4, $5, $6)`,
				id, it.ProductID, it.SKU, it.Name, it.Quantity, it.UnitPrice.Amount); err != nil {
				return fmt.Errorf("order: insert item: %w", err)
			}
		}
		if no.Confirmation != nil && no.Confirmation.To != "" {
			msg := *no.Confirmation
			msg.Reference = id
			msg.Subject = strings.ReplaceAll(msg.Subject, "{order_id}", id)
			msg.Body = strings.ReplaceAll(msg.Body, "{order_id}", id)
			if _, err := notify.Enqueue(ctx, tx, now, msg); err != nil {
				return err
			}
		}
		out, err = load(ctx, tx, id, "")
		return err
	})
	return out, err
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

const orderColumns = `id, checkout_id, member_id, status, currency, total_amount, points_redeemed, points_amount, charged_amount, charge_id,
	points_earned, refunded_amount, created_at, updated_at, authorized_amount, points_returned, fulfilment`

func scanOrder(sc interface{ Scan(...any) error }) (Order, error) {
	var o Order
	var created, updated int64
	err := sc.Scan(&o.ID, &o.CheckoutID, &o.MemberID, &o.Status, &o.Total.Currency, &o.Total.Amount, &o.PointsRedeemed, &o.PointsAmount.Amount,
		&o.Charged.Amount, &o.ChargeID, &o.PointsEarned, &o.Refunded.Amount, &created, &updated, &o.Authorized.Amount, &o.PointsReturned, &o.Fulfilment)
	cur := o.Total.Currency
	o.PointsAmount.Currency, o.Charged.Currency, o.Refunded.Currency, o.Authorized.Currency = cur, cur, cur, cur
	o.CreatedAt, o.UpdatedAt = db.FromMicros(created), db.FromMicros(updated)
	return o, err
}

func notFound(id string) error {
	return errs.Coded(errs.NotFound, CodeOrderNotFound, "order %s does not exist", id).With("order_id", id)
}

func load(ctx context.Context, q querier, id, forUpdate string) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`+forUpdate, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, notFound(id)
	}
	if err != nil {
		return Order{}, fmt.Errorf("order: load %s: %w", id, err)
	}
	return withItems(ctx, q, o)
}

func withItems(ctx context.Context, q querier, o Order) (Order, error) {
	rows, err := q.QueryContext(ctx, `SELECT product_id, sku, name, quantity, unit_price_amount, cancelled_quantity FROM order_items WHERE order_id = $1 ORDER BY product_id`, o.ID)
	if err != nil {
		return Order{}, fmt.Errorf("order: items %s: %w", o.ID, err)
	}
	defer rows.Close()
	o.Items = []Item{}
	for rows.Next() {
		it := Item{UnitPrice: money.Money{Currency: o.Total.Currency}}
		if err := rows.Scan(&it.ProductID, &it.SKU, &it.Name, &it.Quantity, &it.UnitPrice.Amount, &it.CancelledQuantity); err != nil {
			return Order{}, fmt.Errorf("order: items %s: %w", o.ID, err)
		}
		o.Items = append(o.Items, it)
	}
	return o, rows.Err()
}

func byCheckout(ctx context.Context, q querier, checkoutID string) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE checkout_id = $1`, checkoutID))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, errs.Coded(errs.NotFound, CodeOrderNotFound, "no order for checkout %s", checkoutID)
	}
	if err != nil {
		return Order{}, fmt.Errorf("order: by checkout: %w", err)
	}
	return withItems(ctx, q, o)
}

// Get returns an order.
func (s *Service) Get(ctx context.Context, id string) (Order, error) {
	return load(ctx, s.db.Read(), id, "")
}

// ByCheckout returns the order a checkout created, or errs NotFound "order_not_found".
func (s *Service) ByCheckout(ctx context.Context, checkoutID string) (Order, error) {
	return byCheckout(ctx, s.db.Read(), checkoutID)
}

// ListByMember returns a member's orders, newest first, at most limit.
func (s *Service) ListByMember(ctx context.Context, memberID string, limit int) ([]Order, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE member_id = $1 ORDER BY created_at DESC, id LIMIT $2`, memberID, limit)
	if err != nil {
		return nil, fmt.Errorf("order: list: %w", err)
	}
	var out []Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("order: list: %w", err)
		}
		out = append(out, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("order: list: %w", err)
	}
	for i := range out {
		if out[i], err = withItems(ctx, s.db.Read(), out[i]); err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = []Order{}
	}
	return out, nil
}

// Confirm moves a paid order to confirmed and records the points it earned.
// Confirming a confirmed order is a no-op.
func (s *Service) Confirm(ctx context.Context, id string, pointsEarned int64) (Order, error) {
	var out Order
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		o, err := load(ctx, tx, id, tx.ForUpdate())
		if err != nil {
			return err
		}
		if o.Status == Authorized {
			out = o // manual capture: fulfilment confirms it (FinishFulfilment)
			return nil
		}
		if o.Status != Confirmed {
			if !CanTransition(o.Status, Confirmed) {
				return errs.Coded(errs.Conflict, "invalid_order_state", "a %s order cannot be confirmed", o.Status)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'confirmed', points_earned = $2, updated_at = $3 WHERE id = $1`,
				id, pointsEarned, db.Micros(s.now())); err != nil {
				return fmt.Errorf("order: confirm: %w", err)
			}
			o.Status, o.PointsEarned = Confirmed, pointsEarned
			if err := s.emit(ctx, tx, events.OrderConfirmed, o.ID, events.OrderConfirmedData{
				OrderID: o.ID, CheckoutID: o.CheckoutID, MemberID: o.MemberID,
				Total:      events.Money{Amount: o.Total.Amount, Currency: o.Total.Currency},
				PointsUsed: o.PointsRedeemed, PointsEarned: pointsEarned}); err != nil {
				return err
			}
		}
		out = o
		return nil
	})
	return out, err
}

// RefundPlan is a refund recorded by StartRefund, to be carried out by the caller.
type RefundPlan struct {
	ID     string
	Order  Order
	Amount money.Money // cash to return (may be zero for an order paid with points only)
	// Full: this refund empties the order, so redeemed points go back and earned
	// points are reversed.
	Full bool
	Done bool // already finished earlier (an idempotent replay)
}

// StartRefund records a pending refund of amount (nil: everything left) on an
// order. refundID makes it idempotent: the same id returns the same plan.
func (s *Service) StartRefund(ctx context.Context, orderID, refundID string, amount *money.Money) (RefundPlan, error) {
	var plan RefundPlan
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		o, err := load(ctx, tx, orderID, tx.ForUpdate())
		if err != nil {
			return err
		}
		plan = RefundPlan{ID: refundID, Order: o, Amount: money.Money{Currency: o.Total.Currency}}
		var state string
		err = tx.QueryRowContext(ctx, `SELECT amount, full_refund, state FROM order_refunds WHERE id = $1 AND order_id = $2`, refundID, orderID).
			Scan(&plan.Amount.Amount, &plan.Full, &state)
		if err == nil {
			plan.Done = state == "done"
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("order: refund lookup: %w", err)
		}
		if !CanTransition(o.Status, Refunded) {
			return errs.Coded(errs.Conflict, "order_not_refundable", "a %s order cannot be refunded", o.Status).With("status", string(o.Status))
		}
		var pending int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM order_refunds WHERE order_id = $1 AND state = 'pending'`, orderID).Scan(&pending); err != nil {
			return fmt.Errorf("order: refund lookup: %w", err)
		}
		if pending > 0 {
			return errs.Coded(errs.Conflict, "refund_in_progress", "another refund of this order is in progress; retry it first")
		}
		left := o.Charged.Amount - o.Refunded.Amount
		switch {
		case amount == nil:
			plan.Amount.Amount, plan.Full = left, true
		case amount.Currency != o.Total.Currency || amount.Amount <= 0 || amount.Amount > left:
			return errs.Coded(errs.Unprocessable, "invalid_refund_amount", "the refund must be a positive amount in %s of at most %s",
				o.Total.Currency, money.Money{Amount: left, Currency: o.Total.Currency}).With("field", "amount")
		default:
			plan.Amount.Amount, plan.Full = amount.Amount, amount.Amount == left
		}
		now := db.Micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO order_refunds (id, order_id, amount, full_refund, state, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 'pending', $5, $5)`, refundID, orderID, plan.Amount.Amount, plan.Full, now); err != nil {
			return fmt.Errorf("order: record refund: %w", err)
		}
		return nil
	})
	return plan, err
}

// FinishRefund marks a refund done and moves the order to partially_refunded or
// refunded. Idempotent.
func (s *Service) FinishRefund(ctx context.Context, orderID, refundID string) (Order, error) {
	var out Order
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		o, err := load(ctx, tx, orderID, tx.ForUpdate())
		if err != nil {
			return err
		}
		var amount int64
		var full bool
		var state string
		err = tx.QueryRowContext(ctx, `SELECT amount, full_refund, state FROM order_refunds WHERE id = $1 AND order_id = $2`, refundID, orderID).Scan(&amount, &full, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.Coded(errs.NotFound, "refund_not_found", "refund %s does not exist", refundID)
		}
		if err != nil {
			return fmt.Errorf("order: finish refund: %w", err)
		}
		if state == "done" {
			out = o
			return nil
		}
		status := PartiallyRefunded
		if full {
			status = Refunded
		}
		now := db.Micros(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE order_refunds SET state = 'done', updated_at = $2 WHERE id = $1`, refundID, now); err != nil {
			return fmt.Errorf("order: finish refund: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = $2, refunded_amount = refunded_amount + $3, updated_at = $4 WHERE id = $1`,
			orderID, string(status), amount, now); err != nil {
			return fmt.Errorf("order: finish refund: %w", err)
		}
		out, err = load(ctx, tx, orderID, "")
		if err != nil {
			return err
		}
		var returned int64
		if full {
			returned = out.PointsRedeemed
		}
		return s.emit(ctx, tx, events.OrderRefunded, orderID, events.OrderRefundedData{
			OrderID: orderID, MemberID: out.MemberID, Refunded: events.Money{Amount: amount, Currency: out.Total.Currency},
			PointsReturned: returned})
	})
	return out, err
}

// emit records an order event about order id in tx (nothing when the
// service records no events).
func (s *Service) emit(ctx context.Context, tx *db.Tx, typ, id string, data any) error {
	if s.events == nil {
		return nil
	}
	e, err := events.New(ctx, typ, events.SourceOrders, id, s.now(), data)
	if err != nil {
		return err
	}
	return s.events.Record(ctx, tx, e)
}
