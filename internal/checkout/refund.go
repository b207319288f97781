package checkout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// The refund saga: POST /v1/orders/{id}/refund (routed with the checkout's
// routes, as it needs the payment and loyalty clients the checkout holds)
// gives the money back, then the points spent, then takes back the points
// earned, each step idempotent on the refund id.

type refundBody struct {
	Amount *money.Money `json:"amount,omitempty"`
	Reason string       `json:"reason,omitempty"`
}

// RefundResult is the outcome of a refund.
type RefundResult struct {
	Order          order.Order `json:"order"`
	RefundID       string      `json:"refund_id"`
	Refunded       money.Money `json:"refunded"`
	PointsReturned int64       `json:"points_returned"`
	PointsReversed bool        `json:"points_reversed"`
}

func (s *Service) handleRefund(w http.ResponseWriter, r *http.Request) error {
	var b refundBody
	if r.ContentLength != 0 {
		if err := httpx.Decode(r, &b); err != nil {
			return err
		}
	}
	if len(b.Reason) > 500 {
		return errs.Coded(errs.Invalid, "invalid_field", "reason must be at most 500 characters").With("field", "reason")
	}
	orderID := r.PathValue("id")
	sum := sha256.Sum256([]byte(orderID + "\x00" + auth.FromContext(r.Context()).Actor() + "\x00" + r.Header.Get("Idempotency-Key")))
	res, err := s.Refund(r.Context(), orderID, "rf_"+hex.EncodeToString(sum[:12]), b.Amount)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

// Refund refunds an order: amount (nil: everything not yet refunded) goes back
// to the card; a refund that empties the order also returns the points spent
// on it and, when the loyalty service supports it, reverses the points it
// earned. refundID makes it idempotent; a refund interrupted half-way is
// completed by calling again with the same id.
func (s *Service) Refund(ctx context.Context, orderID, refundID string, amount *money.Money) (RefundResult, error) {
	ctx, span := s.tracer.Start(ctx, "order.refund")
	defer span.End()
	span.SetAttributes(attribute.String("order.id", orderID))
	res, err := s.refund(ctx, orderID, refundID, amount, refundOptions{})
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return RefundResult{}, err
	}
	span.SetAttributes(attribute.Int64("refund.amount", res.Refunded.Amount), attribute.Int64("refund.points_returned", res.PointsReturned),
		attribute.Bool("refund.points_reversed", res.PointsReversed))
	return res, nil
}

// refundOptions are the switches of a refund recorded from outside Godwit
// (external.go); the zero value is Godwit's own refund.
type refundOptions struct {
	// noProvider: the money has already gone back (a refund made in Stripe's
	// dashboard, a lost dispute), so the provider is not called.
	noProvider bool
	// keepRedeemed: the points spent on the order are not returned (a lost
	// dispute: the cardholder's bank took the card payment back, not the points).
	keepRedeemed bool
}

func (s *Service) refund(ctx context.Context, orderID, refundID string, amount *money.Money, opt refundOptions) (RefundResult, error) {
	plan, err := s.cfg.Orders.StartRefund(ctx, orderID, refundID, amount)
	if err != nil {
		return RefundResult{}, err
	}
	o := plan.Order
	res := RefundResult{RefundID: refundID, Refunded: plan.Amount}
	if !plan.Done {
		if plan.Amount.Amount > 0 && !opt.noProvider {
			if _, err := s.cfg.Payments.Refund(ctx, o.ChargeID, plan.Amount, refundID); err != nil {
				return RefundResult{}, err
			}
		}
		if plan.Full && o.MemberID != "" && s.cfg.Loyalty != nil {
			if spent := o.PointsRedeemed - o.PointsReturned; spent > 0 && !opt.keepRedeemed {
				if err := s.cfg.Loyalty.RefundPoints(ctx, o.MemberID, spent, "order-refund:"+o.ID); err != nil {
					return RefundResult{}, err
				}
			}
			if rev, ok := s.cfg.Loyalty.(PurchaseReverser); ok && o.PointsEarned > 0 {
				if err := rev.ReversePurchase(ctx, o.MemberID, o.ID); err != nil {
					return RefundResult{}, err
				}
			}
		}
		if o, err = s.cfg.Orders.FinishRefund(ctx, orderID, refundID); err != nil {
			return RefundResult{}, err
		}
	} else if o, err = s.cfg.Orders.Get(ctx, orderID); err != nil {
		return RefundResult{}, err
	}
	res.Order = o
	if plan.Full {
		if !opt.keepRedeemed {
			res.PointsReturned = o.PointsRedeemed - o.PointsReturned // fulfilment gave back the rest
		}
		_, res.PointsReversed = s.cfg.Loyalty.(PurchaseReverser)
		res.PointsReversed = res.PointsReversed && o.PointsEarned > 0
	}
	return res, nil
}
