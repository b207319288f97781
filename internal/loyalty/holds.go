package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Hold statuses.
const (
	HoldPending  = "pending"
	HoldCaptured = "captured"
	HoldVoided   = "voided"
)

// Hold is a reservation of a member's points: the points leave the
// spendable balance at once but the ledger moves only at capture. A void
// gives them back. Holds make debits that may fail afterwards (checkout
// payment, redemption fulfilment) two-phase.
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

const holdColumns = `id, member_id, points, reference, status, transaction_id, created_at, expires_at`

func scanHold(r rowScanner) (Hold, error) {
	var h Hold
	var txID sql.NullString
	var created, expires int64
	if err := r.Scan(&h.ID, &h.MemberID, &h.Points, &h.Reference, &h.Status, &txID, &created, &expires); err != nil {
		return Hold{}, err
	}
	h.TransactionID = txID.String
	h.CreatedAt, h.ExpiresAt = db.FromMicros(created), db.FromMicros(expires)
	return h, nil
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
	defer func() { endSpan(span, err) }()
	if err := validatePointsRef(points, reference); err != nil {
		span.SetAttributes(attribute.String("loyalty.result", errs.CodeOf(err)))
		return "", err
	}
	now := s.now().UTC()
	var (
		id     string
		result string
	)
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		// The member and any hold with the reference are read without the
		// member's lock; placeHold's guarded update takes it, so on PostgreSQL
		// the lock is held for one statement and the commit. If the guard
		// fails (the member spent in between), read again under the lock and
		// decide on that. A concurrent hold with the same reference fails on
		// the unique reference, and the retry replays it.
		lock := false
		for {
			m, prior, err := readHolder(ctx, tx, memberID, reference, lock)
			if err != nil {
				return err
			}
			if prior != nil {
				if prior.MemberID != memberID || prior.Points != points {
					return errs.Coded(errs.Conflict, "hold_reference_conflict",
						"reference %q already holds points for a different member or amount", reference).With("reference", reference)
				}
				id, result = prior.ID, "replayed"
				return nil
			}
			if m.Balance < points {
				return errs.Coded(errs.Unprocessable, "insufficient_points",
					"the member has %d spendable points; %d are needed", m.Balance, points).
					With("points_short", points-m.Balance).With("current_balance", m.Balance)
			}
			result, id = "held", newID()
			_, ok, err := placeHold(ctx, tx, holdPlacement{holdID: id, memberID: memberID, points: points, reference: reference,
				now: now, expires: now.Add(s.holdTTL)})
			if err != nil || ok {
				return err
			}
			if lock {
				return fmt.Errorf("loyalty: member %s cannot cover a %d-point hold it was checked for under its lock", memberID, points)
			}
			lock = true
		}
	})
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.result", errs.CodeOf(err)))
		return "", internal("hold points", err)
	}
	span.SetAttributes(attribute.String("loyalty.hold_id", id), attribute.String("loyalty.result", result))
	return id, nil
}

// readHolder reads a member and the hold with reference, if any, in one
// statement, locking the member's row if lock (on PostgreSQL; SQLite's write
// transaction holds its one write lock already). A hold's member, points
// and reference never change, so a hold found without the lock is current
// enough to replay.
func readHolder(ctx context.Context, tx *db.Tx, memberID, reference string, lock bool) (Member, *Hold, error) {
	suffix := ""
	if lock {
		suffix = tx.Dialect().ForUpdateOf("m")
	}
	var (
		hid, hmember sql.NullString
		hpoints      sql.NullInt64
	)
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumnsM+`, h.id, h.member_id, h.points
		FROM loyalty_members m LEFT JOIN loyalty_holds h ON h.reference = $2
		WHERE m.id = $1`+suffix, memberID, reference), &hid, &hmember, &hpoints)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, nil, memberNotFound(memberID)
	}
	if err != nil || !hid.Valid {
		return m, nil, err
	}
	return m, &Hold{ID: hid.String, MemberID: hmember.String, Points: hpoints.Int64, Reference: reference}, nil
}

func holdNotFound(id string) error {
	return errs.Coded(errs.NotFound, "hold_not_found", "no points hold with id %q", id).With("hold_id", id)
}

// lockHold locks the member owning a hold, then reads the hold under that
// lock: every change to a member's holds, balance and postings happens under
// the member's row lock, in that one order.
func lockHold(ctx context.Context, tx *db.Tx, holdID string) (Hold, Member, error) {
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM loyalty_members
		WHERE id = (SELECT member_id FROM loyalty_holds WHERE id = $1)`+tx.ForUpdate(), holdID))
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, Member{}, holdNotFound(holdID)
	}
	if err != nil {
		return Hold{}, Member{}, err
	}
	h, err := scanHold(tx.QueryRowContext(ctx, `SELECT `+holdColumns+` FROM loyalty_holds WHERE id = $1`, holdID))
	return h, m, err
}

// lockHoldMember locks the member owning a hold and reads the hold in one
// statement. On PostgreSQL the hold was read as of the statement's start, so
// its status may be older than the lock; the rest of it never changes. A
// captured or voided hold stays so.
func lockHoldMember(ctx context.Context, tx *db.Tx, holdID string) (Hold, Member, error) {
	var (
		h                Hold
		txID             sql.NullString
		created, expires int64
	)
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumnsM+`, h.id, h.member_id, h.points, h.reference, h.status,
		h.transaction_id, h.created_at, h.expires_at
		FROM loyalty_holds h JOIN loyalty_members m ON m.id = h.member_id
		WHERE h.id = $1`+tx.Dialect().ForUpdateOf("m"), holdID), &h.ID, &h.MemberID, &h.Points, &h.Reference, &h.Status, &txID, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, Member{}, holdNotFound(holdID)
	}
	if err != nil {
		return Hold{}, Member{}, err
	}
	h.TransactionID = txID.String
	h.CreatedAt, h.ExpiresAt = db.FromMicros(created), db.FromMicros(expires)
	return h, m, nil
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
	defer func() { endSpan(span, err) }()
	now := s.now().UTC()
	result := "captured"
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		h, m, err := lockHoldMember(ctx, tx, holdID)
		if err != nil {
			return err
		}
		span.SetAttributes(attribute.String("loyalty.member_id", h.MemberID), attribute.Int64("loyalty.points", h.Points))
		for {
			switch h.Status {
			case HoldCaptured:
				result = "already_captured"
				return nil
			case HoldVoided:
				return errs.Coded(errs.Conflict, "hold_voided", "points hold %q was voided and cannot be captured", holdID).With("hold_id", holdID)
			}
			result = "captured"
			_, _, err = captureHoldTx(ctx, tx, h, m, TxRedeem, AccountRedemption, Breakdown{}, now, nil)
			if !errors.Is(err, errHoldNotPending) {
				return err
			}
			// Settled while this transaction waited for the lock: read it again.
			if h, err = scanHold(tx.QueryRowContext(ctx, `SELECT `+holdColumns+` FROM loyalty_holds WHERE id = $1`, holdID)); err != nil {
				return err
			}
			if h.Status == HoldPending {
				return fmt.Errorf("loyalty: hold %s is pending but was not captured", holdID)
			}
		}
	})
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.result", errs.CodeOf(err)))
		return internal("capture hold", err)
	}
	span.SetAttributes(attribute.String("loyalty.result", result))
	return nil
}

// VoidPointsHold returns a pending hold's points to the spendable balance.
// Voiding a voided hold is a no-op; voiding a captured hold is errs Conflict
// "hold_captured".
func (s *Service) VoidPointsHold(ctx context.Context, holdID string) (err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.void_hold", trace.WithAttributes(attribute.String("loyalty.hold_id", holdID)))
	defer func() { endSpan(span, err) }()
	now := s.now().UTC()
	result := "voided"
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		h, _, err := lockHold(ctx, tx, holdID)
		if err != nil {
			return err
		}
		span.SetAttributes(attribute.String("loyalty.member_id", h.MemberID), attribute.Int64("loyalty.points", h.Points))
		switch h.Status {
		case HoldVoided:
			result = "already_voided"
			return nil
		case HoldCaptured:
			return errs.Coded(errs.Conflict, "hold_captured", "points hold %q was captured and cannot be voided", holdID).With("hold_id", holdID)
		}
		result = "voided"
		return voidHoldTx(ctx, tx, h, now)
	})
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.result", errs.CodeOf(err)))
		return internal("void hold", err)
	}
	span.SetAttributes(attribute.String("loyalty.result", result))
	return nil
}

// GetHold returns a points hold.
func (s *Service) GetHold(ctx context.Context, holdID string) (Hold, error) {
	h, err := scanHold(s.db.Read().QueryRowContext(ctx, `SELECT `+holdColumns+` FROM loyalty_holds WHERE id = $1`, holdID))
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, holdNotFound(holdID)
	}
	if err != nil {
		return Hold{}, internal("get hold", err)
	}
	return h, nil
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
	defer func() { endSpan(span, err) }()
	if err := validatePointsRef(points, reference); err != nil {
		span.SetAttributes(attribute.String("loyalty.result", errs.CodeOf(err)))
		return err
	}
	now := s.now().UTC()
	result := "refunded"
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
			result = "replayed"
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		result = "refunded"
		txID := newID()
		bd, err := json.Marshal(Breakdown{Reference: reference})
		if err != nil {
			return err
		}
		ledgerAfter := m.Balance + m.Pending + points
		if err := insertTransaction(ctx, tx, txID, TxRefund, m.ID, key, string(bd), actorOf(ctx), traceIDOf(ctx), now,
			posting{MemberAccount(m.ID), points, &ledgerAfter}, posting{AccountRedemption, -points, nil}); err != nil {
			return err
		}
		if err := insertLot(ctx, tx, m.ID, txID, lotCredit(m.Balance+m.Pending, points), now, s.prog.ExpiryFor(now)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, updated_at = $3 WHERE id = $1`, m.ID, points, db.Micros(now))
		return err
	})
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.result", errs.CodeOf(err)))
		return internal("refund points", err)
	}
	span.SetAttributes(attribute.String("loyalty.result", result))
	return nil
}

type posting struct {
	account      string
	amount       int64
	balanceAfter *int64
}

// insertTransaction writes a ledger transaction and its postings, which
// must sum to zero.
func insertTransaction(ctx context.Context, tx *db.Tx, id, typ, memberID, key, breakdown, actor, traceID string, at time.Time, ps ...posting) error {
	var sum int64
	for _, p := range ps {
		sum += p.amount
	}
	if sum != 0 {
		return fmt.Errorf("ledger: %s transaction postings sum to %d, not 0", typ, sum)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_transactions (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, typ, memberID, nullable(key), breakdown, actor, traceID, db.Micros(at)); err != nil {
		return err
	}
	for _, p := range ps {
		var after sql.NullInt64
		if p.balanceAfter != nil {
			after = sql.NullInt64{Int64: *p.balanceAfter, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at)
			VALUES ($1, $2, $3, $4, $5)`, id, p.account, p.amount, after, db.Micros(at)); err != nil {
			return err
		}
	}
	return nil
}

// consumeLots takes points from the member's lots, soonest-expiring first
// (ties by earning order), and says which lots gave how much. The lots of
// transaction preferTx, if any, go first (a reversal takes back its own
// lot before others). Callers pass lotDebit's share of a debit, so a member
// whose ledger balance goes negative has their lots emptied, not overdrawn.
func consumeLots(ctx context.Context, tx *db.Tx, memberID string, points int64, preferTx string) ([]LotUse, error) {
	if points <= 0 {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots
		WHERE member_id = $1 AND remaining > 0
		ORDER BY CASE WHEN transaction_id = $2 THEN 0 ELSE 1 END, expires_at, earned_at, id`, memberID, preferTx)
	if err != nil {
		return nil, err
	}
	var uses []LotUse
	left := points
	for rows.Next() && left > 0 {
		var u LotUse
		var remaining int64
		if err := rows.Scan(&u.LotID, &remaining); err != nil {
			rows.Close()
			return nil, err
		}
		u.Points = min(remaining, left)
		left -= u.Points
		uses = append(uses, u)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if left > 0 {
		return nil, fmt.Errorf("ledger: member %s lots hold %d points too few for a %d-point debit", memberID, left, points)
	}
	for _, u := range uses {
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_lots SET remaining = remaining - $2 WHERE id = $1`, u.LotID, u.Points); err != nil {
			return nil, err
		}
	}
	return uses, nil
}
