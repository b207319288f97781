package checkout

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// A checkout whose charge asks the customer to authenticate (3-D Secure)
// waits in requires_action: the record keeps the charge, the reservation and
// the points hold, and the row leaves in_progress so that neither a heartbeat
// nor the recovery pass's lease expiry touches it. It is settled by whichever
// comes first — the client's confirm, the provider's webhook (SettleCharge), a
// retried POST /v1/checkout, or the recovery pass once the window has ended —
// and each of them moves the row out of requires_action with one conditional
// UPDATE that takes a fresh lease (claimWaiting). The winner settles on the
// charge's state as the provider reports it; from then on the checkout is an
// ordinary leased saga, so a crash while settling is completed by the retry
// or the recovery pass exactly as any other. The others wait for the outcome
// and answer it.

// Problem codes of a waiting checkout.
const (
	// CodeAuthenticationExpired: the authentication window passed; the
	// checkout was cancelled and its stock and points released (409).
	CodeAuthenticationExpired = "authentication_expired"
)

// Action is what a client needs to complete a waiting checkout.
type Action struct {
	ClientSecret string
	NextAction   json.RawMessage
	ExpiresAt    time.Time
}

// Who settled a waiting checkout: the checkout.settled_by attribute.
const (
	settledByConfirm  = "confirm"
	settledByWebhook  = "webhook"
	settledByRetry    = "retry"
	settledByRecovery = "recovery"
)

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// await records that rec's charge waits for the customer and answers the
// pending result. The window starts now, unless the checkout waited before
// (a retry that resumed it keeps the first window).
func (s *Service) await(ctx context.Context, span trace.Span, rec *record) (Result, string, error) {
	ch := rec.pending
	if rec.ActionExpiresAt == 0 {
		rec.ActionExpiresAt = db.Micros(s.cfg.Now().Add(s.cfg.AuthenticationWindow))
	}
	rec.ClientSecretHash = secretHash(ch.ClientSecret)
	rec.Step, rec.State = StepProcessingPayment, stateRequiresAction
	if err := s.save(ctx, rec); err != nil {
		return Result{}, StepProcessingPayment, err
	}
	span.SetAttributes(attribute.String("checkout.state", stateRequiresAction))
	return s.pendingResult(rec, *ch), StepProcessingPayment, nil
}

func (s *Service) pendingResult(rec *record, ch payment.Charge) Result {
	res := rec.result()
	res.OrderID, res.Status = "", stateRequiresAction
	res.Action = &Action{ClientSecret: ch.ClientSecret, NextAction: ch.NextAction, ExpiresAt: db.FromMicros(rec.ActionExpiresAt).UTC()}
	return res
}

func (s *Service) read(ctx context.Context, id string) (*record, error) {
	rec, err := scanRecord(s.cfg.DB.Read().QueryRowContext(ctx, `SELECT `+recordColumns+` FROM checkouts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.Coded(errs.NotFound, "checkout_not_found", "checkout %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("checkout: read %s: %w", id, err)
	}
	return rec, nil
}

// claimWaiting moves a waiting checkout to in_progress under a fresh lease,
// with one conditional UPDATE: of all who try at once, exactly one gets the
// record, the others nil. With expiredBy set, only a checkout whose window
// ended by then is claimed (the recovery pass).
func (s *Service) claimWaiting(ctx context.Context, id string, expiredBy time.Time) (*record, error) {
	var rec *record
	token := uuid.NewString()
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		rec = nil
		now := s.cfg.Now()
		leaseUntil := now.Add(s.cfg.Lease)
		q := `UPDATE checkouts SET state = 'in_progress', lease_token = $2, lease_until = $3, updated_at = $4 WHERE id = $1 AND state = 'requires_action'`
		args := []any{id, token, db.Micros(leaseUntil), db.Micros(now)}
		if !expiredBy.IsZero() {
			q += ` AND action_expires_at <= $5`
			args = append(args, db.Micros(expiredBy))
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("checkout: claim waiting %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		rec, err = scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM checkouts WHERE id = $1`, id))
		if err != nil {
			return fmt.Errorf("checkout: claim waiting %s: %w", id, err)
		}
		rec.setLease(leaseUntil)
		return nil
	})
	return rec, err
}

// settleByID settles the waiting checkout id for a confirm, a webhook or a
// retried POST: it answers a checkout that has ended, claims one that waits
// and settles it, and waits (up to one lease) for one that someone else is
// settling, else answers checkout_in_progress.
func (s *Service) settleByID(ctx context.Context, span trace.Span, id string) (Result, string, error) {
	deadline := time.Now().Add(s.cfg.Lease)
	wait := 20 * time.Millisecond
	for {
		rec, err := s.read(ctx, id)
		if err != nil {
			return Result{}, StepProcessingPayment, err
		}
		switch rec.State {
		case stateCompleted, stateFailed:
			return s.replay(span, rec)
		case stateRequiresAction:
			// A charge still waiting inside its window needs no claim:
			// answer it as it is.
			if db.Micros(s.cfg.Now()) < rec.ActionExpiresAt {
				ch, err := s.cfg.Payments.Retrieve(ctx, rec.ChargeID)
				if err != nil {
					return Result{}, StepProcessingPayment, withStep(err, StepProcessingPayment)
				}
				if ch.Status == payment.StatusRequiresAction {
					return s.pendingResult(rec, ch), StepProcessingPayment, nil
				}
			}
			claimed, err := s.claimWaiting(ctx, id, time.Time{})
			if err != nil {
				return Result{}, StepProcessingPayment, withStep(err, StepProcessingPayment)
			}
			if claimed != nil {
				defer s.keepLease(claimed)()
				return s.settleClaimed(ctx, span, claimed)
			}
			continue // someone else claimed it first: see what they made of it
		case stateInProgress:
			if rec.ActionExpiresAt == 0 {
				return Result{}, StepProcessingPayment, errInProgress()
			}
			// Someone is settling it; if they died, take it over.
			claimed, err := s.claim(ctx, id, s.cfg.Now())
			if err != nil {
				return Result{}, StepProcessingPayment, withStep(err, StepProcessingPayment)
			}
			if claimed != nil {
				span.SetAttributes(attribute.Bool("checkout.resumed", true))
				defer s.keepLease(claimed)()
				return s.settleClaimed(ctx, span, claimed)
			}
		}
		if time.Now().After(deadline) {
			return Result{}, StepProcessingPayment, errInProgress()
		}
		select {
		case <-ctx.Done():
			return Result{}, StepProcessingPayment, interrupted(StepProcessingPayment, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// settleClaimed settles a checkout that waited for authentication and that
// this process now holds (in progress, under its lease), on the charge's
// state as the provider reports it: succeeded → the order; declined → 402 and
// everything released; still waiting → back to waiting inside the window,
// cancelled once it has passed (409 authentication_expired).
func (s *Service) settleClaimed(ctx context.Context, span trace.Span, rec *record) (Result, string, error) {
	ch, err := s.cfg.Payments.Retrieve(ctx, rec.ChargeID)
	if err != nil {
		// Unknown: put it back to wait; the next confirm, webhook or
		// recovery pass asks again.
		s.backToWaiting(ctx, rec)
		return Result{}, StepProcessingPayment, interrupted(StepProcessingPayment, err)
	}
	expired := db.Micros(s.cfg.Now()) >= rec.ActionExpiresAt
	if ch.Status == payment.StatusRequiresAction && expired {
		err := s.cfg.Payments.Cancel(ctx, rec.ChargeID)
		switch {
		case err == nil:
			ch.Status = payment.StatusVoided
		case errs.Is(err, payment.CodeChargeNotCancelable):
			// The customer authenticated just in time: settle on that.
			if ch, err = s.cfg.Payments.Retrieve(ctx, rec.ChargeID); err != nil {
				s.backToWaiting(ctx, rec)
				return Result{}, StepProcessingPayment, interrupted(StepProcessingPayment, err)
			}
		default:
			s.backToWaiting(ctx, rec)
			return Result{}, StepProcessingPayment, interrupted(StepProcessingPayment, err)
		}
	}
	span.SetAttributes(attribute.String("payment.status", ch.Status))
	switch ch.Status {
	case payment.StatusRequiresAction:
		if err := s.backToWaiting(ctx, rec); err != nil {
			return Result{}, StepProcessingPayment, err
		}
		return s.pendingResult(rec, ch), StepProcessingPayment, nil
	case payment.StatusSucceeded, payment.StatusAuthorized:
		if s.cfg.LocalTx {
			return s.afterPayment(ctx, span, rec)
		}
		return s.orderAndFinish(ctx, span, rec)
	case payment.StatusDeclined:
		code := ch.DeclineCode
		if code == "" {
			code = payment.DeclineAuthenticationFailed
		}
		decline := errs.Coded(errs.PaymentRequired, payment.CodePaymentDeclined, "the payment was declined (%s)", code).
			With("decline_code", code).With("retryable", false)
		return s.fail(ctx, rec, StepProcessingPayment, decline)
	default: // voided: cancelled at the window's end, here or by the provider
		return s.fail(ctx, rec, StepProcessingPayment, errs.Coded(errs.Conflict, CodeAuthenticationExpired,
			"the payment was not authenticated in time; the checkout was cancelled and nothing was charged; please check out again"))
	}
}

// backToWaiting returns a claimed checkout to requires_action (best effort:
// if it fails, the lease runs out and the retry or the recovery pass settles
// it as an interrupted settle).
func (s *Service) backToWaiting(ctx context.Context, rec *record) error {
	rec.State = stateRequiresAction
	if err := s.save(context.WithoutCancel(ctx), rec); err != nil {
		rec.State = stateInProgress
		s.log.WarnContext(ctx, "waiting checkout not put back", "checkout_id", rec.ID, "error", err.Error())
		return err
	}
	return nil
}

// settleRecovered settles, for the recovery pass, a checkout that waited for
// authentication and is claimed: it reports the outcome as resume does.
func (s *Service) settleRecovered(ctx context.Context, rec *record) (string, error) {
	res, _, err := s.settleClaimed(ctx, trace.SpanFromContext(ctx), rec)
	switch {
	case err == nil && res.Action != nil:
		return stateRequiresAction, nil
	case err == nil:
		return stateCompleted, nil
	case errors.Is(err, errInterrupted):
		return "", err
	default:
		return stateFailed, nil
	}
}

// recoverWaiting claims and settles the checkouts whose authentication window
// ended: their charge is cancelled (or, if the customer authenticated in the
// last moment, turned into the order) and their stock and points released.
func (s *Service) recoverWaiting(ctx context.Context, rep *Report) error {
	now := s.cfg.Now()
	rows, err := s.cfg.DB.Read().QueryContext(ctx, `SELECT id FROM checkouts WHERE state = 'requires_action' AND action_expires_at <= $1
		ORDER BY action_expires_at LIMIT 200`, db.Micros(now))
	if err != nil {
		return fmt.Errorf("checkout: recover waiting: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("checkout: recover waiting: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkout: recover waiting: %w", err)
	}
	var all []error
	for _, id := range ids {
		rec, err := s.claimWaiting(ctx, id, now)
		if err != nil {
			rep.Errors++
			all = append(all, err)
			continue
		}
		if rec == nil {
			continue // settled meanwhile, or claimed by another replica
		}
		rep.Checked++
		outcome, err := s.recoverOne(ctx, rec)
		switch {
		case err != nil:
			rep.Errors++
			all = append(all, fmt.Errorf("checkout %s: %w", id, err))
		case outcome == stateCompleted:
			rep.Completed++
		case outcome == stateFailed:
			rep.Compensated++
		}
	}
	return errors.Join(all...)
}

// settle runs one settling of a waiting checkout inside a checkout.confirm
// span, counting its outcome like a checkout's.
func (s *Service) settle(ctx context.Context, id, by string) (Result, error) {
	ctx, span := s.tracer.Start(ctx, "checkout.confirm", trace.WithAttributes(
		attribute.String("checkout.id", id), attribute.String("checkout.settled_by", by)))
	defer span.End()
	res, step, err := s.settleByID(ctx, span, id)
	status := "completed"
	switch {
	case err != nil:
		status = "failed"
		if errors.Is(err, errInterrupted) || errs.Is(err, CodeCheckoutInProgress) {
			status = "interrupted"
		}
		span.SetAttributes(attribute.String("checkout.failure_step", step))
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
	case res.Action != nil:
		status = stateRequiresAction
		span.SetAttributes(attribute.String("checkout.state", stateRequiresAction))
	default:
		span.SetAttributes(attribute.String("checkout.state", stateCompleted), attribute.String("order.id", res.OrderID))
	}
	if status != stateRequiresAction && !errs.Is(err, CodeCheckoutInProgress) {
		s.completed.Add(ctx, 1, metricStatus(status))
	}
	return res, err
}

// SettleCharge settles the checkout that made charge chargeID, for the
// provider's webhook: found is false (and err nil) when no checkout has the
// charge (yet). The charge's state is asked of the provider, never taken from
// the caller; settling is exactly a confirm's, and safe to run concurrently
// with confirms, the recovery pass and itself: one order. A checkout that
// ended (with an order or a failure) is found and left as it is; err is set
// only when the outcome is not known yet (someone else is settling, or the
// provider could not be asked), so the caller retries.
func (s *Service) SettleCharge(ctx context.Context, chargeID string) (found bool, err error) {
	if chargeID == "" {
		return false, nil
	}
	var id string
	err = s.cfg.DB.Read().QueryRowContext(ctx, `SELECT id FROM checkouts WHERE charge_id = $1`, chargeID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checkout: find charge %s: %w", chargeID, err)
	}
	_, err = s.settle(ctx, id, settledByWebhook)
	if err != nil && (errors.Is(err, errInterrupted) || errs.Is(err, CodeCheckoutInProgress) || !isBusiness(err)) {
		return true, err
	}
	return true, nil
}

// Confirm settles a waiting checkout after the customer authenticated, for
// its owner (see authorize): the order's result, the decline, or the expiry;
// repeating it answers the same.
func (s *Service) Confirm(ctx context.Context, id string, owner Owner) (Result, error) {
	rec, err := s.read(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if err := owner.authorize(rec); err != nil {
		return Result{}, err
	}
	return s.settle(ctx, id, settledByConfirm)
}

// Owner is who asks about a checkout: a member (MemberID), or a guest
// showing the waiting charge's client secret.
type Owner struct {
	MemberID     string
	ClientSecret string
}

// authorize answers 404 to anyone but the checkout's owner, so that a
// checkout's existence is not revealed either.
func (o Owner) authorize(rec *record) error {
	if o.MemberID != "" && rec.MemberID == o.MemberID {
		return nil
	}
	if o.ClientSecret != "" && rec.ClientSecretHash != "" &&
		subtle.ConstantTimeCompare([]byte(secretHash(o.ClientSecret)), []byte(rec.ClientSecretHash)) == 1 {
		return nil
	}
	return errs.Coded(errs.NotFound, "checkout_not_found", "checkout %s does not exist", rec.ID)
}

// View is a checkout's state as GET /v1/checkout/{id} shows it to its owner.
type View struct {
	CheckoutID  string     `json:"checkout_id"`
	Status      string     `json:"status"` // in_progress, requires_action, completed, failed
	OrderID     string     `json:"order_id,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	FailureCode string     `json:"failure_code,omitempty"`
	DeclineCode string     `json:"decline_code,omitempty"`
}

// View returns checkout id's state for its owner.
func (s *Service) View(ctx context.Context, id string, owner Owner) (View, error) {
	rec, err := s.read(ctx, id)
	if err != nil {
		return View{}, err
	}
	if err := owner.authorize(rec); err != nil {
		return View{}, err
	}
	v := View{CheckoutID: rec.ID, Status: rec.State, OrderID: rec.OrderID, FailureCode: rec.FailureCode}
	if rec.ActionExpiresAt != 0 && (rec.State == stateRequiresAction || rec.State == stateInProgress) {
		t := db.FromMicros(rec.ActionExpiresAt).UTC()
		v.ExpiresAt = &t
	}
	if dc, ok := rec.FailureDetails["decline_code"].(string); ok {
		v.DeclineCode = dc
	}
	return v, nil
}
