package checkout

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/order"
)

// What happened to a charge outside Godwit, reported by the provider's
// webhooks (internal/stripehook): a refund made in Stripe's dashboard and a
// dispute the merchant lost. Each goes through the refund saga (refund.go)
// without calling the provider, since the money has already moved, under a
// refund id derived from what the provider reported, so a redelivered or
// retried event finds the refund it made.

// RefundedOutside brings the order paid by chargeID up to refunded, the
// charge's total refunded as the provider reports it. A refund Godwit made
// itself is already counted on the order once it finished, so its event
// changes nothing; while one is still in progress this answers errs
// Conflict refund_in_progress, and the caller retries. An older event (a
// smaller total than the order's) changes nothing either. found is false when
// no order has the charge.
func (s *Service) RefundedOutside(ctx context.Context, chargeID string, refunded money.Money) (found bool, err error) {
	o, found, err := s.orderByCharge(ctx, chargeID)
	if err != nil || !found {
		return found, err
	}
	if refunded.Currency != o.Charged.Currency {
		return true, errs.Coded(errs.Unprocessable, "currency_mismatch", "charge %s was refunded in %s, the order is in %s",
			chargeID, refunded.Currency, o.Charged.Currency)
	}
	more := min(refunded.Amount, o.Charged.Amount) - o.Refunded.Amount
	if more <= 0 {
		return true, nil
	}
	id := externalRefundID("refund", chargeID, strconv.FormatInt(refunded.Amount, 10))
	_, err = s.externalRefund(ctx, o.ID, id, &money.Money{Amount: more, Currency: o.Charged.Currency}, refundOptions{noProvider: true}, "refund")
	return true, err
}

// DisputeLost records a dispute lost on chargeID: what is left of the order
// is marked refunded (the bank has taken the payment back) and the points
// the order earned are taken back, even into a negative balance as a
// reversal does; the points spent on it are not returned. found is false
// when no order has the charge.
func (s *Service) DisputeLost(ctx context.Context, chargeID, disputeID string) (found bool, err error) {
	o, found, err := s.orderByCharge(ctx, chargeID)
	if err != nil || !found {
		return found, err
	}
	if o.Status == order.Refunded {
		return true, nil // refunded in full already: its earned points were reversed then
	}
	id := externalRefundID("dispute", chargeID, disputeID)
	_, err = s.externalRefund(ctx, o.ID, id, nil, refundOptions{noProvider: true, keepRedeemed: true}, "dispute")
	return true, err
}

// ChargeTraceParent is the traceparent of the checkout that made chargeID
// ("" when none is recorded), for the webhook's span link.
func (s *Service) ChargeTraceParent(ctx context.Context, chargeID string) string {
	_, tp, _, err := s.checkoutByCharge(ctx, chargeID)
	if err != nil {
		return ""
	}
	return tp
}

// externalRefund runs the refund saga for a refund made outside Godwit,
// traced as order.refund with refund.source naming what made it.
func (s *Service) externalRefund(ctx context.Context, orderID, refundID string, amount *money.Money, opt refundOptions, source string) (RefundResult, error) {
	ctx, span := s.tracer.Start(ctx, "order.refund")
	defer span.End()
	span.SetAttributes(attribute.String("order.id", orderID), attribute.String("refund.source", source))
	res, err := s.refund(ctx, orderID, refundID, amount, opt)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return RefundResult{}, err
	}
	span.SetAttributes(attribute.Int64("refund.amount", res.Refunded.Amount), attribute.Int64("refund.points_returned", res.PointsReturned),
		attribute.Bool("refund.points_reversed", res.PointsReversed))
	s.log.InfoContext(ctx, "refund recorded from the payment provider", "order_id", orderID, "refund_id", refundID, "source", source,
		"amount", res.Refunded.Amount)
	return res, nil
}

// externalRefundID names the refund an outside event makes: the same event
// (or one reporting the same total) always names the same refund.
func externalRefundID(kind, chargeID, what string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + chargeID + "\x00" + what))
	return "rf_ext_" + hex.EncodeToString(sum[:12])
}

// orderByCharge returns the order paid by chargeID: the checkout recorded
// the charge, the order is found by the checkout.
func (s *Service) orderByCharge(ctx context.Context, chargeID string) (order.Order, bool, error) {
	checkoutID, _, found, err := s.checkoutByCharge(ctx, chargeID)
	if err != nil || !found {
		return order.Order{}, false, err
	}
	o, err := s.cfg.Orders.ByCheckout(ctx, checkoutID)
	if errs.Is(err, order.CodeOrderNotFound) {
		return order.Order{}, false, nil
	}
	if err != nil {
		return order.Order{}, false, err
	}
	return o, true, nil
}

// checkoutByCharge finds the checkout that recorded chargeID.
func (s *Service) checkoutByCharge(ctx context.Context, chargeID string) (id, traceparent string, found bool, err error) {
	if chargeID == "" {
		return "", "", false, nil
	}
	err = s.cfg.DB.Read().QueryRowContext(ctx, `SELECT id, traceparent FROM checkouts WHERE charge_id = $1 ORDER BY created_at LIMIT 1`,
		chargeID).Scan(&id, &traceparent)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("checkout: find checkout of charge %s: %w", chargeID, err)
	}
	return id, traceparent, true, nil
}
