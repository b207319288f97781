package checkout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Report says what a recovery pass did.
type Report struct {
	Checked     int `json:"checked"`     // unfinished checkouts whose lease had run out
	Completed   int `json:"completed"`   // resumed to a confirmed order
	Compensated int `json:"compensated"` // undone: charge voided, stock released, points hold voided
	Errors      int `json:"errors"`      // left for the next pass
	// Fulfilled counts manual-capture fulfilments a crash left half done
	// and this pass finished.
	Fulfilled int `json:"fulfilled,omitempty"`
}

// Recover resumes or compensates every checkout that is not finished and
// whose lease has run out (its process died or gave up) at least one more
// lease ago: for that long a checkout is left to its client's retry, which
// can finish it (it has the payment token; recovery can only undo what was not
// paid). A checkout that was
// charged is completed when its stock is still reserved, otherwise refunded;
// one that was not charged is undone. Safe to run on several replicas at once:
// each checkout is claimed with a conditional update before it is touched.
func (s *Service) Recover(ctx context.Context) (Report, error) {
	var rep Report
	expiredBy := s.cfg.Now().Add(-s.cfg.Lease)
	rows, err := s.cfg.DB.Read().QueryContext(ctx, `SELECT id FROM checkouts WHERE state = 'in_progress' AND lease_until <= $1 ORDER BY lease_until LIMIT 200`,
		db.Micros(expiredBy))
	if err != nil {
		return rep, fmt.Errorf("checkout: recover: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return rep, fmt.Errorf("checkout: recover: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("checkout: recover: %w", err)
	}
	var all []error
	for _, id := range ids {
		rec, err := s.claim(ctx, id, expiredBy)
		if err != nil {
			all = append(all, err)
			rep.Errors++
			continue
		}
		if rec == nil {
			continue // another replica took it
		}
		rep.Checked++
		outcome, err := s.recoverOne(ctx, rec)
		switch {
		case err != nil:
			rep.Errors++
			all = append(all, fmt.Errorf("checkout %s: %w", id, err))
			s.log.ErrorContext(ctx, "checkout recovery failed; will retry", "checkout_id", id, "step", rec.Step, "error", err.Error())
		case outcome == stateCompleted:
			rep.Completed++
		default:
			rep.Compensated++
		}
	}
	if err := s.recoverWaiting(ctx, &rep); err != nil {
		all = append(all, err)
	}
	if err := s.recoverFulfilments(ctx, &rep); err != nil {
		all = append(all, err)
	}
	return rep, errors.Join(all...)
}

// claim takes over a lease that ran out by expiredBy, with a conditional
// update (so never two at once); nil means someone else holds it.
func (s *Service) claim(ctx context.Context, id string, expiredBy time.Time) (*record, error) {
	var rec *record
	token := uuid.NewString()
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		rec = nil
		now := s.cfg.Now()
		leaseUntil := now.Add(s.cfg.Lease)
		res, err := tx.ExecContext(ctx, `UPDATE checkouts SET lease_token = $2, lease_until = $3 WHERE id = $1 AND state = 'in_progress' AND lease_until <= $4`,
			id, token, db.Micros(leaseUntil), db.Micros(expiredBy))
		if err != nil {
			return fmt.Errorf("checkout: claim %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		rec, err = scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM checkouts WHERE id = $1`, id))
		if err != nil {
			return fmt.Errorf("checkout: claim %s: %w", id, err)
		}
		rec.setLease(leaseUntil)
		return nil
	})
	return rec, err
}

func (s *Service) recoverOne(ctx context.Context, rec *record) (string, error) {
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithAttributes(
		attribute.String("checkout.id", rec.ID), attribute.String("checkout.step", rec.Step),
		attribute.String("cart.id", rec.CartID), attribute.String("user.id", userID(rec.MemberID)))}
	if rec.TraceParent != "" {
		linked := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": rec.TraceParent})
		if sc := trace.SpanContextFromContext(linked); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, span := s.tracer.Start(ctx, "checkout.recover", opts...)
	defer span.End()
	defer s.keepLease(rec)()
	outcome, err := s.resume(ctx, rec)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "recovery failed")
		return "", err
	}
	span.SetAttributes(attribute.String("checkout.recovery_outcome", outcome))
	status := "recovered"
	if outcome != stateCompleted {
		status = "compensated"
	}
	s.completed.Add(ctx, 1, metricStatus(status))
	return outcome, nil
}

// resume completes or undoes a claimed checkout. The row records only the
// saga's start (initiated) and, before the points hold and the charge, the
// items and amounts (holding_points); every effect is found again by
// reference: the order by checkout id, the charge by its idempotency key, the
// reservation by its reference, the points hold by asking for it again.
func (s *Service) resume(ctx context.Context, rec *record) (string, error) {
	if rec.ActionExpiresAt != 0 {
		// It waited for authentication and its settling was interrupted:
		// the charge decides, as for a confirm.
		return s.settleRecovered(ctx, rec)
	}
	// An order exists: finish it.
	if o, err := s.cfg.Orders.ByCheckout(ctx, rec.ID); err == nil {
		rec.OrderID = o.ID
		if rec.ChargeID == "" {
			rec.ChargeID = o.ChargeID
		}
		if err := s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error { return s.finish(ctx, rec) }); err != nil {
			return "", err
		}
		return stateCompleted, nil
	} else if !errs.Is(err, order.CodeOrderNotFound) {
		return "", err
	}
	paid, err := s.paid(ctx, rec)
	if err != nil {
		return "", err
	}
	if paid {
		done, err := s.completePaid(ctx, rec)
		if err != nil {
			return "", err
		}
		if done {
			return stateCompleted, nil
		}
		// The reservation expired meanwhile: undo the charge below.
	}
	if err := s.findUnrecorded(ctx, rec); err != nil {
		return "", err
	}
	err = s.abort(ctx, rec, func() {
		rec.State, rec.FailureStep = stateFailed, rec.Step
		rec.FailureKind, rec.FailureCode = string(errs.Conflict), "checkout_aborted"
		rec.FailureMessage = "the checkout was interrupted and has been undone; no payment was kept; please check out again"
		rec.FailureDetails = nil
	})
	if err != nil {
		return "", err
	}
	return stateFailed, nil
}

// paid reports whether the customer of a checkout with no order was charged,
// recording the charge on rec. It asks the gateway: the charge's idempotency
// key is the checkout id. A charge is made only after holding_points is
// recorded.
func (s *Service) paid(ctx context.Context, rec *record) (bool, error) {
	rank := stepRank[rec.Step]
	if rank < stepRank[StepHoldingPoints] {
		return false, nil
	}
	cash, err := rec.cash()
	if err != nil {
		return false, err
	}
	if cash.Amount == 0 {
		// Nothing to charge: undone unless the order exists (handled by the
		// caller). A row at creating_order was written by an older version,
		// which recorded that step after a zero charge.
		return rank >= stepRank[StepCreatingOrder], nil
	}
	ch, err := s.cfg.Payments.Lookup(ctx, rec.ID)
	switch {
	case err == nil:
		if ch.Status != payment.StatusDeclined {
			rec.ChargeID = ch.ID
		}
		return ch.Status == payment.StatusSucceeded || ch.Status == payment.StatusAuthorized, nil
	case errs.Is(err, payment.CodeChargeNotFound):
		return false, nil
	default:
		return false, err
	}
}

// findUnrecorded finds the effects a crash may have left unrecorded on a
// checkout about to be undone: the reservation (made before anything but
// begin is recorded) and the points hold.
func (s *Service) findUnrecorded(ctx context.Context, rec *record) error {
	if rec.ReservationID == "" {
		r, err := s.cfg.Inventory.ReservationByReference(ctx, rec.ID)
		switch {
		case err == nil:
			rec.ReservationID = r.ID
		case errs.Is(err, inventory.CodeReservationNotFound):
		default:
			return err
		}
	}
	if rec.HoldID == "" && stepRank[rec.Step] >= stepRank[StepHoldingPoints] && rec.PointsRedeemed > 0 && rec.MemberID != "" && s.cfg.Loyalty != nil {
		// HoldPoints is idempotent on the reference: it returns the hold the
		// crashed step made, or makes one that is voided right away.
		id, err := s.cfg.Loyalty.HoldPoints(ctx, rec.MemberID, rec.PointsRedeemed, rec.ID)
		switch {
		case err == nil:
			rec.HoldID = id
		case errs.KindOf(err) == errs.Unprocessable:
		default:
			return err
		}
	}
	return nil
}

// RecoveryPass runs Recover once and logs what it found: one pass of the
// checkout recovery job. Replicas may all run it: a checkout is claimed
// (its lease taken by a conditional update) before it is recovered.
func (s *Service) RecoveryPass(ctx context.Context) error {
	rep, err := s.Recover(ctx)
	if rep.Checked > 0 || rep.Fulfilled > 0 {
		s.log.InfoContext(ctx, "checkout recovery pass", "checked", rep.Checked, "completed", rep.Completed, "compensated", rep.Compensated,
			"fulfilled", rep.Fulfilled, "errors", rep.Errors)
	}
	return err
}
