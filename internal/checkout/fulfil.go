package checkout

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Fulfilment with manual capture (Config.CaptureManual): POST
// /v1/orders/{id}/fulfil ships an authorized order, less any cancelled
// lines. The plan is recorded first (order.StartFulfilment), then the card is
// captured for what was shipped (or the authorisation released when nothing
// was), then, in one transaction in one process, the cancelled units go back
// to stock, points paid for more than the card part come back, points are
// earned on what was captured and the order is confirmed (or cancelled).
// Every step is idempotent on the order, so a repeated or concurrent
// fulfilment, or one finishing an interrupted one, does each thing once.

// maxFulfilCancels bounds the cancelled lines of one fulfilment.
const maxFulfilCancels = 200

// fulfiller is implemented by an order service in this process.
type fulfiller interface {
	StartFulfilment(ctx context.Context, id string, cancels []order.LineCancel, pointsBack order.PointsBack) (order.FulfilPlan, error)
	FinishFulfilment(ctx context.Context, id string, pointsEarned int64) (order.Order, error)
}

// capturer is implemented by a payment service that can capture an
// authorisation.
type capturer interface {
	Capture(ctx context.Context, chargeID string, amount money.Money, key string) (payment.Charge, error)
}

// restocker is implemented by an inventory service in this process.
type restocker interface {
	ReturnUnits(ctx context.Context, reservationID string, items []inventory.Item) error
}

type fulfilBody struct {
	Cancelled []order.LineCancel `json:"cancelled,omitempty"`
}

func (s *Service) handleFulfil(w http.ResponseWriter, r *http.Request) error {
	var b fulfilBody
	if r.ContentLength != 0 {
		if err := httpx.Decode(r, &b); err != nil {
			return err
		}
	}
	if len(b.Cancelled) > maxFulfilCancels {
		return errs.Coded(errs.Invalid, "invalid_field", "at most %d cancelled lines", maxFulfilCancels).With("field", "cancelled")
	}
	o, err := s.Fulfil(r.Context(), r.PathValue("id"), b.Cancelled)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, o)
	return nil
}

// Fulfil fulfils an authorized order, cancelling the units in cancels
// (nothing cancelled: the whole order ships). An order whose fulfilment
// started before answers as that fulfilment ends, whatever cancels says;
// an order that is not authorized is errs Conflict order.CodeOrderNotAuthorized.
func (s *Service) Fulfil(ctx context.Context, orderID string, cancels []order.LineCancel) (order.Order, error) {
	ctx, span := s.tracer.Start(ctx, "order.fulfil")
	defer span.End()
	span.SetAttributes(attribute.String("order.id", orderID), attribute.Int("order.cancelled_lines", len(cancels)))
	o, err := s.fulfil(ctx, orderID, cancels)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return order.Order{}, err
	}
	span.SetAttributes(attribute.String("order.status", string(o.Status)), attribute.Int64("order.captured", o.Charged.Amount),
		attribute.Int64("order.points_returned", o.PointsReturned), attribute.Int64("order.points_earned", o.PointsEarned))
	return o, nil
}

func (s *Service) fulfil(ctx context.Context, orderID string, cancels []order.LineCancel) (order.Order, error) {
	f, okF := s.cfg.Orders.(fulfiller)
	inv, okI := s.cfg.Inventory.(restocker)
	if !okF || !okI {
		if err := order.CheckCancels(cancels); err != nil {
			return order.Order{}, err
		}
		o, err := s.cfg.Orders.Get(ctx, orderID)
		if err != nil {
			return order.Order{}, err
		}
		return order.Order{}, errs.Coded(errs.Conflict, order.CodeOrderNotAuthorized, "a %s order is not waiting for fulfilment", o.Status).
			With("status", string(o.Status))
	}
	plan, err := f.StartFulfilment(ctx, orderID, cancels, s.pointsBack)
	if err != nil {
		return order.Order{}, err
	}
	if plan.Done {
		return plan.Order, nil
	}
	if err := s.settleAuthorisation(ctx, plan); err != nil {
		return order.Order{}, err
	}
	var out order.Order
	err = s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error {
		// Read the plan again under the order's lock: a concurrent
		// fulfilment that finished meanwhile has done everything below.
		p, err := f.StartFulfilment(ctx, orderID, nil, nil)
		if err != nil {
			return err
		}
		if p.Done {
			out = p.Order
			return nil
		}
		out, err = s.finishFulfilment(ctx, f, inv, p)
		return err
	})
	return out, err
}

// settleAuthorisation captures what the plan says, or releases the whole
// authorisation when nothing is to be captured.
func (s *Service) settleAuthorisation(ctx context.Context, plan order.FulfilPlan) error {
	o := plan.Order
	if o.ChargeID == "" {
		return nil // paid with points only
	}
	if plan.Capture.Amount == 0 {
		if _, err := s.cfg.Payments.Void(ctx, o.ChargeID); err != nil {
			return err
		}
		return nil
	}
	c, ok := s.cfg.Payments.(capturer)
	if !ok {
		return errs.Coded(errs.Conflict, order.CodeOrderNotAuthorized, "this payment service cannot capture")
	}
	_, err := c.Capture(ctx, o.ChargeID, plan.Capture, "capture/"+o.ID)
	return err
}

// finishFulfilment restocks, returns points, earns and confirms, inside the
// caller's transaction (in one process).
func (s *Service) finishFulfilment(ctx context.Context, f fulfiller, inv restocker, p order.FulfilPlan) (order.Order, error) {
	o := p.Order
	if len(p.Cancelled) > 0 {
		items := make([]inventory.Item, len(p.Cancelled))
		for i, c := range p.Cancelled {
			items[i] = inventory.Item{ProductID: c.ProductID, Quantity: c.Quantity}
		}
		if err := inv.ReturnUnits(ctx, inventory.ReservationID(o.CheckoutID), items); err != nil {
			return order.Order{}, err
		}
	}
	var earned int64
	if o.MemberID != "" && s.cfg.Loyalty != nil {
		if o.PointsReturned > 0 {
			if err := s.cfg.Loyalty.RefundPoints(ctx, o.MemberID, o.PointsReturned, "order-fulfil:"+o.ID); err != nil {
				return order.Order{}, err
			}
		}
		if p.Capture.Amount > 0 {
			e, err := s.cfg.Loyalty.EarnPurchase(ctx, o.MemberID, o.ID, p.Capture)
			if err != nil {
				return order.Order{}, err
			}
			earned = e.Points
		}
	}
	return f.FinishFulfilment(ctx, o.ID, earned)
}

// pointsBack is the order.PointsBack of the program: the points that pay
// for what is left of the points part (rounded up, as at checkout) stay
// spent, the rest come back.
func (s *Service) pointsBack(o order.Order, excess money.Money) int64 {
	left := money.Money{Amount: o.PointsAmount.Amount - excess.Amount, Currency: o.PointsAmount.Currency}
	if left.Amount <= 0 {
		return o.PointsRedeemed
	}
	kept, err := s.cfg.Program.PointsForAmount(left)
	if err != nil {
		return 0
	}
	return o.PointsRedeemed - kept
}

// recoverFulfilments finishes manual-capture fulfilments a crash left half
// done (planned, maybe captured, not yet restocked, earned and confirmed) once
// they have been still for two leases, so the money taken and the points
// earned never stay apart until someone calls fulfil again. Fulfil is
// idempotent and safe beside a concurrent call, so replicas need no claim.
func (s *Service) recoverFulfilments(ctx context.Context, rep *Report) error {
	if _, ok := s.cfg.Orders.(fulfiller); !ok {
		return nil // split mode: no manual capture, no such orders here
	}
	stillSince := s.cfg.Now().Add(-2 * s.cfg.Lease)
	rows, err := s.cfg.DB.Read().QueryContext(ctx, `SELECT id FROM orders WHERE fulfilment = 'started' AND updated_at <= $1
		ORDER BY updated_at LIMIT 200`, db.Micros(stillSince))
	if err != nil {
		return fmt.Errorf("checkout: recover fulfilments: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("checkout: recover fulfilments: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkout: recover fulfilments: %w", err)
	}
	var all []error
	for _, id := range ids {
		if _, err := s.Fulfil(ctx, id, nil); err != nil {
			rep.Errors++
			all = append(all, fmt.Errorf("order %s: %w", id, err))
			s.log.ErrorContext(ctx, "fulfilment recovery failed; will retry", "order_id", id, "error", err.Error())
			continue
		}
		rep.Fulfilled++
	}
	return errors.Join(all...)
}
