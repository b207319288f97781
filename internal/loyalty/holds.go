package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Hold statuses.
const (
	HoldPending  = ledger.HoldPending
	HoldCaptured = ledger.HoldCaptured
	HoldVoided   = ledger.HoldVoided
)

// Hold is a reservation of a member's points: the points leave the
// spendable balance at once but the ledger moves only at capture. A void
// gives them back. Holds make debits that may fail afterwards (checkout
// payment, redemption fulfilment) two-phase. The ledger package books them
// (ledger.PlaceHold, CaptureHold, VoidHold).
type Hold struct {
	ID            string
	MemberID      string
	Points        int64
	Reference     string
	Status        string
	TransactionID string // the redeem transaction, once captured
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

func holdOf(h ledger.Hold) Hold {
	return Hold{ID: h.ID, MemberID: h.MemberID, Points: int64(h.Points), Reference: h.Reference, Status: h.Status,
		TransactionID: h.TransactionID, CreatedAt: h.CreatedAt, ExpiresAt: h.ExpiresAt}
}

const maxReferenceLen = 200

func validatePointsRef(points int64, reference string) error {
	if points <= 0 || points > program.MaxActivityPoints {
		return errs.Coded(errs.Unprocessable, "invalid_points", "points must be between 1 and %d", program.MaxActivityPoints).With("field", "points")
	}
	if strings.TrimSpace(reference) == "" || len(reference) > maxReferenceLen {
		return errs.Coded(errs.Unprocessable, "invalid_reference", "reference is required and at most %d bytes", maxReferenceLen).With("field", "reference")
	}
	return nil
}

// HoldPoints moves points from the member's spendable balance to pending.
// It is idempotent on reference: the same reference returns the same hold id
// and holds nothing more (a reference already used for another member or
// amount is errs Conflict "hold_reference_conflict"). Not enough points is
// errs Unprocessable "insufficient_points" with details points_short and
// current_balance, and nothing is held.
func (s *Service) HoldPoints(ctx context.Context, memberID string, points int64, reference string) (holdID string, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.hold_points", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", "hold"),
		attribute.Int64("loyalty.points", points),
	))
	replayed := false
	defer func() { endWithResult(span, "loyalty.result", "held", replayed, err) }()
	if err := validatePointsRef(points, reference); err != nil {
		return "", err
	}
	now := s.now().UTC()
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		holdID, replayed, err = s.holdTx(ctx, tx, memberID, ledger.Points(points), reference, now)
		return err
	})
	if err != nil {
		return "", internal("hold points", err)
	}
	span.SetAttributes(attribute.String("loyalty.hold_id", holdID))
	return holdID, nil
}

// holdTx is HoldPoints' transaction. The member and any hold with the
// reference are read without the member's lock; PlaceHold's guarded update
// takes it, so on PostgreSQL the lock is held for one statement and the
// commit. If the guard fails (the member spent in between), it reads again
// under the lock and decides on that. A concurrent hold with the same
// reference fails on the unique reference, and the retry replays it.
func (s *Service) holdTx(ctx context.Context, tx *db.Tx, memberID string, points ledger.Points, reference string, now time.Time) (string, bool, error) {
	for lock := false; ; lock = true {
		var m Member
		prior, found, err := ledger.FindHold(ctx, tx, memberID, reference, lock, memberHolder(&m, "m"))
		if err != nil {
			return "", false, memberErr(err, memberID)
		}
		if found {
			if prior.MemberID != memberID || prior.Points != points {
				return "", false, errs.Coded(errs.Conflict, "hold_reference_conflict",
					"reference %q already holds points for a different member or amount", reference).With("reference", reference)
			}
			return prior.ID, true, nil
		}
		if m.Balance < int64(points) {
			return "", false, insufficientPoints(m, int64(points))
		}
		id := newID()
		_, ok, err := ledger.PlaceHold(ctx, tx, ledger.Placement{HoldID: id, MemberID: memberID, Points: points, Reference: reference,
			At: now, Expires: now.Add(s.holdTTL)})
		if err != nil || ok {
			return id, false, err
		}
		if lock {
			return "", false, fmt.Errorf("loyalty: member %s cannot cover a %d-point hold it was checked for under its lock", memberID, points)
		}
	}
}

func holdNotFound(id string) error {
	return errs.Coded(errs.NotFound, "hold_not_found", "no points hold with id %q", id).With("hold_id", id)
}

// holdErr turns the ledger's "no such hold" into the client's error.
func holdErr(err error, holdID string) error {
	if errors.Is(err, ledger.ErrHoldNotFound) {
		return holdNotFound(holdID)
	}
	return err
}

// CapturePointsHold posts a pending hold as a redemption: the points leave
// through sink:redemption and the member's lots are consumed
// soonest-expiring first. Capturing a captured hold is a no-op; capturing a
// voided hold is errs Conflict "hold_voided".
func (s *Service) CapturePointsHold(ctx context.Context, holdID string) (err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.capture_hold", trace.WithAttributes(
		attribute.String("loyalty.hold_id", holdID),
		attribute.String("loyalty.transaction_type", TxRedeem),
	))
	result := "captured"
	defer func() { endWithResult(span, "loyalty.result", result, false, err) }()
	now := s.now().UTC()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var m Member
		h, err := ledger.LockHoldForCapture(ctx, tx, holdID, memberHolder(&m, "m"))
		if err != nil {
			return holdErr(err, holdID)
		}
		span.SetAttributes(attribute.String("loyalty.member_id", h.MemberID), attribute.Int64("loyalty.points", int64(h.Points)))
		for {
			switch h.Status {
			case HoldCaptured:
				result = "already_captured"
				return nil
			case HoldVoided:
				return errs.Coded(errs.Conflict, "hold_voided", "points hold %q was voided and cannot be captured", holdID).With("hold_id", holdID)
			}
			result = "captured"
			_, _, err = s.capture(ctx, tx, h, m, TxRedeem, AccountRedemption, Breakdown{}, now, nil)
			if !errors.Is(err, ledger.ErrHoldNotPending) {
				return err
			}
			// Settled while this transaction waited for the lock: read it again.
			if h, err = ledger.GetHold(ctx, tx, holdID); err != nil {
				return err
			}
			if h.Status == HoldPending {
				return fmt.Errorf("loyalty: hold %s is pending but was not captured", holdID)
			}
		}
	})
	return internal("capture hold", err)
}

// capture posts a pending hold of member m (locked by the caller) into
// account, in a transaction of type txType explained by bd (completed with
// the hold and the lots); settle, if not nil, is the caller's row marked
// settled with it. It returns the transaction id and the member's spendable
// balance, or ledger.ErrHoldNotPending having written nothing.
func (s *Service) capture(ctx context.Context, tx *db.Tx, h ledger.Hold, m Member, txType, account string, bd Breakdown, now time.Time, settle *settleRow) (string, int64, error) {
	bd.HoldID, bd.Reference = h.ID, h.Reference
	c := ledger.Capture{
		Hold: h, Before: balanceOf(m), TxID: newID(), Type: txType, Account: account,
		Describe: bd.withLots, Actor: actorOf(ctx), TraceID: traceIDOf(ctx), At: now,
		MemberSet: ledger.Stmt{SQL: "last_activity_at = $1::bigint, updated_at = $1::bigint", Args: []any{db.Micros(laterOf(m.LastActivityAt, now))}},
	}
	if settle != nil {
		w := settle.stmt(c.TxID, m.Balance, now)
		c.With = &w
	}
	bal, err := ledger.CaptureHold(ctx, tx, c)
	if err != nil {
		return c.TxID, int64(bal), err
	}
	var evs []events.Event
	switch txType {
	case TxRedeem:
		evs, err = s.event(ctx, events.PointsRedeemed, m.ID, now, events.PointsRedeemedData{
			MemberID: m.ID, TransactionID: c.TxID, Points: int64(h.Points), Reference: h.Reference,
			RedemptionID: bd.RedemptionID, OptionID: bd.OptionID, Balance: int64(bal)})
	case TxTransfer:
		evs, err = s.event(ctx, events.PointsTransferred, m.ID, now, events.PointsTransferredData{
			MemberID: m.ID, TransactionID: c.TxID, TransferID: bd.TransferID, Points: int64(h.Points),
			PartnerID: bd.PartnerID, Balance: int64(bal)})
	}
	if err == nil {
		err = s.emit(ctx, tx, evs...)
	}
	return c.TxID, int64(bal), err
}

// settleRow is the row of the operation a capture completes (a redemption
// or a partner transfer): it gets status, confirmation, the transaction and
// the new balance in the capture's transaction.
type settleRow struct {
	table        string // loyalty_redemptions or loyalty_transfers
	id           string
	status       string
	confirmation string
}

func (r settleRow) stmt(txID string, balance int64, now time.Time) ledger.Stmt {
	return ledger.Stmt{SQL: `UPDATE ` + r.table + ` SET status = $1::text, confirmation = $2::text, transaction_id = $3::text,
		new_balance = $4::bigint, updated_at = $5::bigint WHERE id = $6::text AND $done`,
		Args: []any{r.status, r.confirmation, txID, balance, db.Micros(now), r.id}}
}

// VoidPointsHold returns a pending hold's points to the spendable balance.
// Voiding a voided hold is a no-op; voiding a captured hold is errs Conflict
// "hold_captured".
func (s *Service) VoidPointsHold(ctx context.Context, holdID string) (err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.void_hold", trace.WithAttributes(attribute.String("loyalty.hold_id", holdID)))
	result := "voided"
	defer func() { endWithResult(span, "loyalty.result", result, false, err) }()
	now := s.now().UTC()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var m Member
		h, err := ledger.LockHold(ctx, tx, holdID, memberHolder(&m, "m"))
		if err != nil {
			return holdErr(err, holdID)
		}
		span.SetAttributes(attribute.String("loyalty.member_id", h.MemberID), attribute.Int64("loyalty.points", int64(h.Points)))
		switch h.Status {
		case HoldVoided:
			result = "already_voided"
			return nil
		case HoldCaptured:
			return errs.Coded(errs.Conflict, "hold_captured", "points hold %q was captured and cannot be voided", holdID).With("hold_id", holdID)
		}
		result = "voided"
		return ledger.VoidHold(ctx, tx, h, now)
	})
	return internal("void hold", err)
}

// GetHold returns a points hold.
func (s *Service) GetHold(ctx context.Context, holdID string) (Hold, error) {
	h, err := ledger.GetHold(ctx, s.db.Read(), holdID)
	if err != nil {
		return Hold{}, internal("get hold", holdErr(err, holdID))
	}
	return holdOf(h), nil
}

// RefundPoints credits back points that were spent at checkout (a refunded
// order): sink:redemption gives them back and they form a new lot. It is
// idempotent on reference; a reference reused for another member or amount
// is errs Conflict "refund_reference_conflict".
func (s *Service) RefundPoints(ctx context.Context, memberID string, points int64, reference string) (err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.refund_points", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", TxRefund),
		attribute.Int64("loyalty.points", points),
	))
	replayed := false
	defer func() { endWithResult(span, "loyalty.result", "refunded", replayed, err) }()
	if err := validatePointsRef(points, reference); err != nil {
		return err
	}
	now := s.now().UTC()
	key := "refund:" + reference
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		m, err := lockMember(ctx, tx, memberID)
		if err != nil {
			return err
		}
		var priorMember sql.NullString
		var priorPoints int64
		err = tx.QueryRowContext(ctx, `SELECT t.member_id, p.amount FROM loyalty_transactions t
			JOIN loyalty_postings p ON p.transaction_id = t.id AND p.account = $2
			WHERE t.idempotency_key = $1`, key, AccountRedemption).Scan(&priorMember, &priorPoints)
		switch {
		case err == nil:
			if priorMember.String != memberID || -priorPoints != points {
				return errs.Coded(errs.Conflict, "refund_reference_conflict",
					"reference %q already refunded points for a different member or amount", reference).With("reference", reference)
			}
			replayed = true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		replayed = false
		_, err = s.credit(ctx, tx, m, creditOf{typ: TxRefund, key: key, from: AccountRedemption, points: points,
			bd: Breakdown{Reference: reference}, now: now})
		return err
	})
	return internal("refund points", err)
}
