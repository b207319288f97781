package checkout

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Fault points after the saga's own commits in one process (Config.LocalTx);
// FailAfter is called with them besides the steps. The charge's commit is the
// payment service's, after which FailAfter is called with
// StepProcessingPayment as in split mode.
const (
	// AfterCommitBeforePayment follows the first commit: the record, the cart
	// hold, the reservation and the points hold are durable, nothing is charged.
	AfterCommitBeforePayment = "after_commit_before_payment"
	// AfterCommitComplete follows the last commit: the order, the captured
	// points, the committed stock, the earning, the confirmation and the
	// completed record are durable, and the answer was not yet sent.
	AfterCommitComplete = "after_commit_complete"
)

type localTxKey struct{}

// inLocalTx runs fn in one write transaction that the local services' own
// InTx calls join, when they are local (Config.LocalTx); inside such a
// transaction already, fn joins it too. Otherwise each service commits on its
// own and fn runs as it is, with a nil tx.
func (s *Service) inLocalTx(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error {
	if !s.cfg.LocalTx {
		return fn(ctx, nil)
	}
	if tx, ok := ctx.Value(localTxKey{}).(*db.Tx); ok {
		return fn(ctx, tx)
	}
	// The saga's transaction goes through the write pipeline, which bounds
	// how many write transactions hold a connection at once (db.Batching),
	// so the services it joins always find one to read through.
	return s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		return fn(context.WithValue(db.Join(ctx, tx), localTxKey{}, tx), tx)
	})
}

// failPointAt calls the FailAfter hook with point; an error stops the saga as
// if the process had died right after step.
func (s *Service) failPointAt(point, step string) error {
	if s.cfg.FailAfter == nil {
		return nil
	}
	if err := s.cfg.FailAfter(point); err != nil {
		return interrupted(step, err)
	}
	return nil
}

// runLocal is the saga when its services are local (Config.LocalTx): commit
// 1 records the checkout, holds the cart, reserves the stock and holds the
// points; commit 2 is the charge (the payment service's); commit 3 commits
// the stock, creates the order and its confirmation, captures the points,
// earns new ones and records the outcome. A crash before a commit leaves
// nothing of its transaction; after it, Recover settles the checkout as in
// split mode.
func (s *Service) runLocal(ctx context.Context, span trace.Span, req Request, traceID string) (Result, string, error) {
	rec, step, failed, err := s.beforePaymentLocal(ctx, span, req, traceID)
	switch {
	case err != nil && rec == nil:
		return Result{}, StepInitiated, withStep(err, StepInitiated)
	case errors.Is(err, errInterrupted):
		// Stopped before the first commit: nothing of it is left to recover.
		return Result{}, step, err
	case err != nil && isBusiness(err):
		s.recordFailure(ctx, req, traceID, rec, step, err)
		return Result{}, step, withStep(err, step)
	case err != nil:
		// A fault rolled the first transaction back: nothing is left to undo
		// or recover, and a retry starts afresh.
		return Result{}, step, withStep(err, step)
	case failed != nil:
		return Result{}, step, failed
	case rec.State == stateRequiresAction:
		return s.settleByID(ctx, span, rec.ID)
	case rec.State != stateInProgress:
		return s.replay(span, rec)
	}
	// The heartbeat starts after the first commit: before it, the row it
	// renews is not visible outside the transaction.
	defer s.keepLease(rec)()
	if err := s.failPointAt(AfterCommitBeforePayment, StepHoldingPoints); err != nil {
		return Result{}, StepHoldingPoints, err
	}
	if res, step, err := s.charge(ctx, span, req, rec); err != nil {
		return res, step, err
	}
	if rec.pending != nil {
		return s.await(ctx, span, rec)
	}
	return s.afterPayment(ctx, span, rec)
}

// beforePaymentLocal runs commit 1 of runLocal: begin and the steps before
// the charge in one transaction. It returns the record (nil if begin
// failed), the step it stopped at, and failed: a business failure undone and
// recorded inside the transaction, which then commits.
func (s *Service) beforePaymentLocal(ctx context.Context, span trace.Span, req Request, traceID string) (rec *record, step string, failed, err error) {
	err = s.inLocalTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		rec, step, failed = nil, StepInitiated, nil
		r, err := s.begin(ctx, req, traceID)
		if err != nil {
			return err
		}
		rec = r
		if rec.State != stateInProgress {
			return nil
		}
		if err := s.failPoint(StepInitiated); err != nil {
			return err
		}
		step, err = s.beforePayment(ctx, span, req, rec)
		if err == nil || !isBusiness(err) || tx.JoinFailed() {
			// A joined call that failed may have left part of its writes:
			// the whole transaction rolls back (recorded by the caller).
			return err
		}
		// A rule said no without failing a write (a changed price, which
		// reprices the cart and must stay so): undo and record it here.
		_, _, failed = s.fail(ctx, rec, step, err)
		if tx.JoinFailed() {
			failed = nil
			return err
		}
		return nil
	})
	if step == "" {
		step = StepHoldingPoints
	}
	return rec, step, failed, err
}

// recordFailure records, in a small transaction of its own, a checkout whose
// first transaction a business failure rolled back, so that a retry with the
// same Idempotency-Key answers the same failure. Nothing of the checkout is
// left to undo.
func (s *Service) recordFailure(ctx context.Context, req Request, traceID string, prev *record, step string, cause error) {
	ctx = context.WithoutCancel(ctx)
	err := s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error {
		rec, err := s.begin(ctx, req, traceID)
		if err != nil || rec.State != stateInProgress {
			return err // another attempt with the same key got in first
		}
		rec.Step, rec.Total, rec.Items, rec.PointsAmount = prev.Step, prev.Total, prev.Items, prev.PointsAmount
		markFailed(rec, step, cause)
		return s.save(ctx, rec)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "recording failed checkout", "checkout_id", req.CheckoutID, "step", step, "error", err.Error())
	}
}

// afterPayment runs creating_order and finishing in one transaction. If
// finishing fails there (not a crash), the order goes with it; the order is
// paid for, so it is then created on its own and finishing is left to
// Recover, as when each service commits on its own.
func (s *Service) afterPayment(ctx context.Context, span trace.Span, rec *record) (Result, string, error) {
	lines := s.orderLines(ctx, rec)
	if err := s.orderFault(ctx, order.FaultPointCreate); err != nil {
		return s.fail(ctx, rec, StepCreatingOrder, err)
	}
	before := *rec
	step := StepCreatingOrder
	err := s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error {
		*rec, step = before, StepCreatingOrder
		err := s.timed(ctx, span, StepCreatingOrder, func() error {
			if err := s.leaseHeld(rec, StepCreatingOrder); err != nil {
				return err
			}
			o, err := s.createOrder(ctx, rec, lines)
			if err != nil {
				return err
			}
			orderCreated(span, rec, o)
			return s.failPoint(StepCreatingOrder)
		})
		if err != nil {
			return err
		}
		step = StepFinishing
		return s.timed(ctx, span, StepFinishing, func() error { return s.finish(ctx, rec) })
	})
	if err == nil {
		// The order, and the whole checkout with it, is durable; a delay here
		// holds the answer.
		if err := s.orderFault(ctx, order.FaultPointCreated); err != nil {
			return Result{}, StepFinishing, err
		}
		if err := s.failPointAt(AfterCommitComplete, StepFinishing); err != nil {
			return Result{}, StepFinishing, err
		}
		return s.result(rec), StepComplete, nil
	}
	*rec = before
	if step == StepCreatingOrder || errors.Is(err, errInterrupted) {
		return s.fail(ctx, rec, step, err)
	}
	s.log.WarnContext(ctx, "checkout finishing failed; creating the order alone", "checkout_id", rec.ID, "error", err.Error())
	o, err := s.createOrder(ctx, rec, lines)
	if err != nil {
		return s.fail(ctx, rec, StepCreatingOrder, err)
	}
	orderCreated(span, rec, o)
	return s.finishDeferrable(ctx, span, rec)
}

// completePaid creates a charged checkout's order and finishes it, for
// Recover: in one transaction when the services are local. It reports false
// and no error when the order cannot be made because the reservation is
// gone, so the checkout is to be undone.
func (s *Service) completePaid(ctx context.Context, rec *record) (bool, error) {
	lines := s.orderLines(ctx, rec)
	before := *rec
	var orderErr error
	err := s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error {
		*rec, orderErr = before, nil
		o, err := s.createOrder(ctx, rec, lines)
		if err != nil {
			orderErr = err
			return err
		}
		rec.OrderID = o.ID
		return s.finish(ctx, rec)
	})
	switch {
	case err == nil:
		return true, nil
	case orderErr != nil:
		*rec = before
		if errs.KindOf(orderErr) == errs.Conflict {
			return false, nil
		}
		return false, orderErr
	case !s.cfg.LocalTx:
		return false, err // the order exists; the next pass finishes it
	}
	// The failed finish took the order with it: create the order alone, so
	// the payment has one, and leave finishing to the next pass.
	*rec = before
	if _, oerr := s.createOrder(ctx, rec, lines); oerr != nil {
		if errs.KindOf(oerr) == errs.Conflict {
			return false, nil
		}
		return false, oerr
	}
	return false, err
}
