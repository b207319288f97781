package order

import (
	"context"
	"fmt"
	"sort"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Fulfilment of an authorized order (manual capture): StartFulfilment
// records the plan — the cancelled units, the amount to capture and the
// points to give back — once, under the order's row lock; the caller then
// captures, restocks and earns, each idempotently; FinishFulfilment confirms
// the order (or cancels it when nothing is left). A repeated or concurrent
// fulfilment finds the recorded plan and follows it, so whatever it was
// asked, an order is captured, restocked and earned on once.

// Error codes of fulfilment.
const (
	// CodeOrderNotAuthorized: the order is not waiting for fulfilment.
	CodeOrderNotAuthorized = "order_not_authorized"
	// CodeUnknownOrderLine: a cancelled line names no product of the order.
	CodeUnknownOrderLine = "unknown_order_line"
	// CodeCancelExceedsQuantity: more units cancelled than were ordered.
	CodeCancelExceedsQuantity = "cancel_exceeds_quantity"
)

// LineCancel is a number of units of one order line not fulfilled.
type LineCancel struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// FulfilPlan is a fulfilment as recorded by StartFulfilment.
type FulfilPlan struct {
	Order Order
	// Capture is what to capture of the authorisation (Order.Charged).
	Capture money.Money
	// Cancelled are the units to restock, by line.
	Cancelled []LineCancel
	// Emptied: every unit was cancelled; the order ends cancelled and the
	// authorisation is released.
	Emptied bool
	// Done: FinishFulfilment already ran (a replay).
	Done bool
}

// PointsBack gives the points to return when cancelled lines are worth
// excess more than the card part of an order that points paid for.
type PointsBack func(o Order, excess money.Money) int64

// CheckCancels validates a fulfilment's cancelled lines on their own: each
// product named once, each quantity positive.
func CheckCancels(cancels []LineCancel) error {
	seen := map[string]bool{}
	for i, c := range cancels {
		field := fmt.Sprintf("cancelled[%d]", i)
		switch {
		case c.ProductID == "" || len(c.ProductID) > 100:
			return errs.Coded(errs.Invalid, "invalid_field", "%s.product_id must name an order line", field).With("field", field+".product_id")
		case seen[c.ProductID]:
			return errs.Coded(errs.Invalid, "invalid_field", "%s names product %s twice", field, c.ProductID).With("field", field+".product_id")
		case c.Quantity <= 0:
			return errs.Coded(errs.Invalid, "invalid_field", "%s.quantity must be positive", field).With("field", field+".quantity")
		}
		seen[c.ProductID] = true
	}
	return nil
}

// StartFulfilment records how an authorized order is fulfilled, or returns
// the plan recorded before (whatever cancels says then). The card part
// (Authorized) is reduced first by the cancelled lines' value; what they are
// worth beyond it comes back as points (pointsBack).
func (s *Service) StartFulfilment(ctx context.Context, id string, cancels []LineCancel, pointsBack PointsBack) (FulfilPlan, error) {
	if err := CheckCancels(cancels); err != nil {
		return FulfilPlan{}, err
	}
	var plan FulfilPlan
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		o, err := load(ctx, tx, id, tx.ForUpdate())
		if err != nil {
			return err
		}
		if o.Fulfilment != "" {
			plan = recordedPlan(o)
			return nil
		}
		if o.Status != Authorized {
			return errs.Coded(errs.Conflict, CodeOrderNotAuthorized, "a %s order is not waiting for fulfilment", o.Status).With("status", string(o.Status))
		}
		p, err := planFulfilment(o, cancels, pointsBack)
		if err != nil {
			return err
		}
		now := db.Micros(s.now())
		for _, c := range p.Cancelled {
			if _, err := tx.ExecContext(ctx, `UPDATE order_items SET cancelled_quantity = $3 WHERE order_id = $1 AND product_id = $2`,
				id, c.ProductID, c.Quantity); err != nil {
				return fmt.Errorf("order: record fulfilment: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET fulfilment = 'started', charged_amount = $2, points_returned = $3, updated_at = $4 WHERE id = $1`,
			id, p.Capture.Amount, p.Order.PointsReturned, now); err != nil {
			return fmt.Errorf("order: record fulfilment: %w", err)
		}
		o, err = load(ctx, tx, id, "")
		if err != nil {
			return err
		}
		plan = recordedPlan(o)
		return nil
	})
	return plan, err
}

// planFulfilment works out a fulfilment of o without recording it.
func planFulfilment(o Order, cancels []LineCancel, pointsBack PointsBack) (FulfilPlan, error) {
	lines := map[string]Item{}
	for _, it := range o.Items {
		lines[it.ProductID] = it
	}
	cur := o.Total.Currency
	value := money.Money{Currency: cur}
	for i, c := range cancels {
		it, ok := lines[c.ProductID]
		field := fmt.Sprintf("cancelled[%d]", i)
		if !ok {
			return FulfilPlan{}, errs.Coded(errs.Unprocessable, CodeUnknownOrderLine, "order %s has no line for product %s", o.ID, c.ProductID).
				With("field", field+".product_id")
		}
		if c.Quantity > it.Quantity {
			return FulfilPlan{}, errs.Coded(errs.Unprocessable, CodeCancelExceedsQuantity, "%d of product %s cancelled, %d ordered", c.Quantity, c.ProductID, it.Quantity).
				With("field", field+".quantity").With("ordered", it.Quantity)
		}
		v, err := it.UnitPrice.Mul(c.Quantity)
		if err == nil {
			value, err = value.Add(v)
		}
		if err != nil {
			return FulfilPlan{}, fmt.Errorf("order %s: cancelled value: %w", o.ID, err)
		}
	}
	fromCard := min(value.Amount, o.Authorized.Amount)
	excess := money.Money{Amount: value.Amount - fromCard, Currency: cur}
	p := FulfilPlan{Order: o, Capture: money.Money{Amount: o.Authorized.Amount - fromCard, Currency: cur}}
	if excess.Amount > 0 && pointsBack != nil {
		p.Order.PointsReturned = min(max(pointsBack(o, excess), 0), o.PointsRedeemed)
	}
	p.Cancelled = append([]LineCancel(nil), cancels...)
	sort.Slice(p.Cancelled, func(i, j int) bool { return p.Cancelled[i].ProductID < p.Cancelled[j].ProductID })
	return p, nil
}

// recordedPlan reads the plan back from an order whose fulfilment started.
func recordedPlan(o Order) FulfilPlan {
	p := FulfilPlan{Order: o, Capture: o.Charged, Done: o.Fulfilment == "done", Emptied: true}
	for _, it := range o.Items { // sorted by product id: the lock order of inventory
		if it.CancelledQuantity > 0 {
			p.Cancelled = append(p.Cancelled, LineCancel{ProductID: it.ProductID, Quantity: it.CancelledQuantity})
		}
		if it.CancelledQuantity < it.Quantity {
			p.Emptied = false
		}
	}
	return p
}

// FinishFulfilment ends a started fulfilment: the order is confirmed with the
// points it earned, or cancelled when every unit was cancelled. Finishing a
// finished one returns it.
func (s *Service) FinishFulfilment(ctx context.Context, id string, pointsEarned int64) (Order, error) {
	var out Order
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		o, err := load(ctx, tx, id, tx.ForUpdate())
		if err != nil {
			return err
		}
		switch o.Fulfilment {
		case "done":
			out = o
			return nil
		case "":
			return errs.Coded(errs.Conflict, CodeOrderNotAuthorized, "order %s has no fulfilment started", id)
		}
		p := recordedPlan(o)
		status := Confirmed
		if p.Emptied {
			status, pointsEarned = Cancelled, 0
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = $2, points_earned = $3, fulfilment = 'done', updated_at = $4 WHERE id = $1`,
			id, string(status), pointsEarned, db.Micros(s.now())); err != nil {
			return fmt.Errorf("order: finish fulfilment: %w", err)
		}
		o.Status, o.PointsEarned, o.Fulfilment = status, pointsEarned, "done"
		if status == Confirmed {
			if err := s.emit(ctx, tx, events.OrderConfirmed, o.ID, events.OrderConfirmedData{
				OrderID: o.ID, CheckoutID: o.CheckoutID, MemberID: o.MemberID,
				Total:      events.Money{Amount: o.Total.Amount, Currency: o.Total.Currency},
				PointsUsed: o.PointsRedeemed - o.PointsReturned, PointsEarned: pointsEarned}); err != nil {
				return err
			}
		}
		out = o
		return nil
	})
	return out, err
}

// FulfilmentStarted reports whether o's fulfilment plan is recorded.
func (o Order) FulfilmentStarted() bool { return o.Fulfilment != "" }
