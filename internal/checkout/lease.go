package checkout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// DefaultLease is Config.Lease when zero. A live saga renews its lease every
// third of it, so it tolerates a database that stalls for two thirds of it; a
// crashed one is taken over by its retry at most this long after the crash.
const DefaultLease = 6 * time.Second

// leaseState is the lease this process holds on a checkout: until it ends
// (Unix microseconds, as last written by begin, save, claim or the heartbeat)
// and whether a renewal found it taken over. Copies of a record share it.
type leaseState struct {
	until atomic.Int64
	lost  atomic.Bool
}

// setLease records that the lease of r now runs until t (never backwards).
func (r *record) setLease(t time.Time) {
	if r.lease == nil {
		r.lease = &leaseState{}
	}
	us := db.Micros(t)
	for {
		cur := r.lease.until.Load()
		if cur >= us || r.lease.until.CompareAndSwap(cur, us) {
			return
		}
	}
}

// errLeaseLost is a heartbeat's finding that the checkout's row no longer
// carries this process's lease token.
var errLeaseLost = errors.New("checkout lease taken over")

// keepLease renews rec's lease every third of Config.Lease until the returned
// stop is called, so a recovery pass or a retry never takes over a saga that
// is still running. A renewal that finds the lease taken over marks it lost,
// and leaseHeld then stops the saga before its next effect; one that fails for
// another reason is retried, and leaseHeld stops the saga once the last lease
// written runs out.
func (s *Service) keepLease(rec *record) (stop func()) {
	if rec.lease == nil {
		rec.setLease(s.cfg.Now())
	}
	id, token, state := rec.ID, rec.LeaseToken, rec.lease
	every := s.cfg.Lease / 3
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			next, err := s.renewLease(id, token, every)
			switch {
			case errors.Is(err, errLeaseLost):
				state.lost.Store(true)
				return
			case err == nil:
				(&record{lease: state}).setLease(next)
			}
		}
	}()
	return func() { close(quit); <-done }
}

// renewLease extends the lease of checkout id while it carries token and is
// in progress. It runs on its own context: the saga's may be inside a
// transaction (db.Join) or about to be cancelled.
func (s *Service) renewLease(id, token string, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	next := s.cfg.Now().Add(s.cfg.Lease)
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE checkouts SET lease_until = $3 WHERE id = $1 AND lease_token = $2 AND state = 'in_progress'`,
			id, token, db.Micros(next))
		if err != nil {
			return fmt.Errorf("checkout: renew lease: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errLeaseLost
		}
		return nil
	})
	return next, err
}

// CodeCheckoutInProgress (409, with Retry-After) answers a retry of a
// checkout that another live process still runs.
const CodeCheckoutInProgress = "checkout_in_progress"

// errInProgress answers a retry that found the checkout held by a live
// process. It is not the Idempotency-Key's final answer (httpx.RetryLater):
// once the owner finishes or dies, the same request must run again (and
// replay or take over the checkout), not be answered this 409 for as long as
// the key is kept.
func errInProgress() *errs.Error {
	return httpx.RetryLater(errs.Coded(errs.Conflict, CodeCheckoutInProgress, "this checkout is still being processed; retry shortly"), 1)
}

// takeOver looks for a checkout already begun under req's id, before begin,
// for a retry: nil means there is none. One that has ended is returned as it
// is (to be replayed). One still in progress belongs either to a live process
// (which renews its lease) or to one that crashed: takeOver waits, a little
// longer than one lease, for the lease to run out and then takes the checkout
// over with a conditional update, so that the retry resumes it; a checkout
// still leased after that answers checkout_in_progress.
func (s *Service) takeOver(ctx context.Context, req Request) (*record, error) {
	deadline := time.Now().Add(s.cfg.Lease + 2*time.Second)
	wait := 50 * time.Millisecond
	for {
		rec, err := scanRecord(s.cfg.DB.Read().QueryRowContext(ctx, `SELECT `+recordColumns+` FROM checkouts WHERE id = $1`, req.CheckoutID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("checkout: find %s: %w", req.CheckoutID, err)
		case rec.RequestHash != requestHash(req):
			return nil, errs.Coded(errs.Unprocessable, "idempotency_key_reused", "this Idempotency-Key was already used for a different checkout")
		case rec.State != stateInProgress:
			return rec, nil
		}
		claimed, err := s.claim(ctx, rec.ID, s.cfg.Now())
		if err != nil || claimed != nil {
			return claimed, err
		}
		if time.Now().After(deadline) {
			return nil, errInProgress()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 250*time.Millisecond)
	}
}

// resumeTaken goes on with a checkout that a retry took over (takeOver) from
// where it stood, with the retry's payment token: an order that exists is
// finished; otherwise the steps before the charge are run again when only
// the start was recorded (each is idempotent on the checkout id), the points
// hold is found or made again, and the charge is made or found with the same
// gateway idempotency key (the checkout id), so never twice. The answer is
// the checkout's real outcome, as if the first attempt had not crashed.
func (s *Service) resumeTaken(ctx context.Context, span trace.Span, req Request, rec *record) (Result, string, error) {
	span.SetAttributes(attribute.Bool("checkout.resumed", true), attribute.String("checkout.resumed_from", rec.Step))
	if rec.ActionExpiresAt != 0 {
		// It waited for authentication and was being settled: the charge
		// decides, as for a confirm.
		return s.settleClaimed(ctx, span, rec)
	}
	if o, err := s.cfg.Orders.ByCheckout(ctx, rec.ID); err == nil {
		rec.OrderID = o.ID
		if rec.ChargeID == "" {
			rec.ChargeID = o.ChargeID
		}
		orderCreated(span, rec, o)
		return s.finishDeferrable(ctx, span, rec)
	} else if !errs.Is(err, order.CodeOrderNotFound) {
		return Result{}, StepCreatingOrder, interrupted(StepCreatingOrder, err)
	}
	if stepRank[rec.Step] < stepRank[StepHoldingPoints] {
		if step, err := s.beforePayment(ctx, span, req, rec); err != nil {
			return s.fail(ctx, rec, step, err)
		}
	} else if err := s.refindHolds(ctx, rec); err != nil {
		return s.fail(ctx, rec, StepHoldingPoints, err)
	}
	if res, step, err := s.charge(ctx, span, req, rec); err != nil {
		return res, step, err
	}
	if rec.pending != nil {
		return s.await(ctx, span, rec)
	}
	if s.cfg.LocalTx {
		return s.afterPayment(ctx, span, rec)
	}
	return s.orderAndFinish(ctx, span, rec)
}

// refindHolds finds the reservation and the points hold of a checkout
// recorded at holding_points; a points hold that cannot be made again (the
// points were spent meanwhile) fails the checkout as the first attempt would
// have.
func (s *Service) refindHolds(ctx context.Context, rec *record) error {
	if err := s.findUnrecorded(ctx, rec); err != nil {
		return err
	}
	if rec.HoldID != "" || rec.PointsRedeemed == 0 {
		return nil
	}
	if s.cfg.Loyalty == nil || rec.MemberID == "" {
		return errs.Coded(errs.Unprocessable, "points_unavailable", "only members can pay with points").With("field", "points_to_redeem")
	}
	id, err := s.cfg.Loyalty.HoldPoints(ctx, rec.MemberID, rec.PointsRedeemed, rec.ID)
	rec.HoldID = id
	return err
}

// InFlight lists the checkouts in flight, which Verify does not count as
// violations: in progress under a lease that runs (their owner is alive, or
// died less than one lease ago), or that ran out less than one lease ago (left
// to the client's retry before the recovery pass takes it). Each line says by
// when it settles: once the lease and the retry window have passed, the
// recovery pass settles a checkout whose owner is gone. settlesBy is the
// latest of those times (zero when none is in flight).
func (s *Service) InFlight(ctx context.Context, grace time.Duration) (lines []string, settlesBy time.Time, err error) {
	// A checkout waiting for authentication settles by its window's end
	// (its "lease" here), plus one lease for the recovery pass.
	rows, err := s.cfg.DB.Read().QueryContext(ctx, `SELECT id, step, until FROM (
		SELECT id, step, lease_until AS until FROM checkouts WHERE state = 'in_progress' AND lease_until >= $1
		UNION ALL
		SELECT id, 'requires_action', action_expires_at FROM checkouts WHERE state = 'requires_action' AND action_expires_at >= $1) w
		ORDER BY until LIMIT 1000`, db.Micros(s.cfg.Now().Add(-grace-s.cfg.Lease)))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("checkout: in flight: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, step string
		var until int64
		if err := rows.Scan(&id, &step, &until); err != nil {
			return nil, time.Time{}, fmt.Errorf("checkout: in flight: %w", err)
		}
		by := db.FromMicros(until).Add(s.cfg.Lease).UTC()
		settlesBy = by
		lines = append(lines, fmt.Sprintf("checkout %s: in flight at step %s, settles by %s", id, step, by.Format(time.RFC3339)))
	}
	return lines, settlesBy, rows.Err()
}
