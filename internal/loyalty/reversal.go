package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

const maxReasonLen = 500

func validateReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || utf8.RuneCountInString(reason) > maxReasonLen {
		return "", errs.Coded(errs.Unprocessable, "reason_required", "reason is required and at most %d characters", maxReasonLen).With("field", "reason")
	}
	return reason, nil
}

// ReversalResult is the outcome of a reversal.
type ReversalResult struct {
	TransactionID         string `json:"transaction_id"`
	ReversedTransactionID string `json:"reversed_transaction_id"`
	MemberID              string `json:"member_id"`
	PointsReversed        int64  `json:"points_reversed"`
	// PendingPointsCancelled are the points of an earning still pending
	// that the reversal cancelled (PointsReversed is then 0: the balance
	// never had them).
	PendingPointsCancelled int64     `json:"pending_points_cancelled,omitempty"`
	StatusPointsReversed   int64     `json:"status_points_reversed"`
	NewBalance             int64     `json:"new_balance"`
	Tier                   string    `json:"tier"`
	Reason                 string    `json:"reason"`
	Actor                  string    `json:"actor"`
	TraceID                string    `json:"trace_id"`
	CreatedAt              time.Time `json:"created_at"`
	// Replayed is true when the transaction had already been reversed; the
	// result is that first reversal's (NewBalance and Tier are current).
	Replayed bool `json:"-"`
}

// ReverseTransaction reverses an earning (a cancelled flight, a refunded
// purchase) exactly: the points it credited go back to program:issuance
// (its own lot is debited first, then the soonest-expiring), its status
// points are taken off the status year they counted in (if that year has
// not been requalified yet), a tier upgrade it caused is undone when the
// status points no longer reach the tier, and the promotion awards it used
// are given back to the caps. If the member already spent the points the
// balance goes negative, and redemptions and transfers are blocked until
// later credits repay it.
//
// Reversing twice returns the first reversal (Replayed). Errors: unknown
// transaction (NotFound "transaction_not_found"), not an earning
// (Unprocessable "not_reversible"), no reason (Unprocessable
// "reason_required").
func (s *Service) ReverseTransaction(ctx context.Context, transactionID, reason string) (res ReversalResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.reverse_transaction", trace.WithAttributes(
		attribute.String("loyalty.transaction_type", TxReversal),
		attribute.String("loyalty.reversed_transaction_id", transactionID),
	))
	defer func() { endWithResult(span, "loyalty.result", "reversed", res.Replayed, err) }()
	if reason, err = validateReason(reason); err != nil {
		return ReversalResult{}, err
	}
	now := s.now().UTC()
	key := "reversal:" + transactionID
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		var (
			typ, bdRaw string
			memberID   sql.NullString
			createdAt  int64
		)
		err := tx.QueryRowContext(ctx, `SELECT type, member_id, breakdown, created_at FROM loyalty_transactions WHERE id = $1`, transactionID).
			Scan(&typ, &memberID, &bdRaw, &createdAt)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.Coded(errs.NotFound, "transaction_not_found", "no ledger transaction with id %q", transactionID).With("transaction_id", transactionID)
		}
		if err != nil {
			return err
		}
		if typ != TxEarn || !memberID.Valid {
			return errs.Coded(errs.Unprocessable, "not_reversible", "transaction %s is a %s; only earnings can be reversed", transactionID, typ).
				With("transaction_id", transactionID)
		}
		m, err := lockMember(ctx, tx, memberID.String)
		if err != nil {
			return err
		}
		span.SetAttributes(attribute.String("loyalty.member_id", m.ID))
		res, err = s.reverseTx(ctx, tx, m, transactionID, bdRaw, db.FromMicros(createdAt), key, reason, now)
		return err
	})
	if err != nil {
		return ReversalResult{}, internal("reverse", err)
	}
	span.SetAttributes(
		attribute.String("loyalty.transaction_id", res.TransactionID),
		attribute.Int64("loyalty.points_reversed", res.PointsReversed),
		attribute.Int64("loyalty.status_points_reversed", res.StatusPointsReversed),
		attribute.Int64("loyalty.new_balance", res.NewBalance),
		attribute.String("loyalty.tier", res.Tier),
	)
	return res, nil
}

// reverseTx reverses earning origID (explained by bdRaw, booked at origAt)
// for member m, whose row is locked, or replays an earlier reversal of it.
func (s *Service) reverseTx(ctx context.Context, tx *db.Tx, m Member, origID, bdRaw string, origAt time.Time, key, reason string, now time.Time) (ReversalResult, error) {
	if prior, found, err := priorReversal(ctx, tx, m, origID, key); err != nil || found {
		return prior, err
	}
	// An earning that pended: cancelled while pending, or reversed from its
	// vest (whose posting, lot and status year are the points').
	posted, statusYear := origID, origAt.UTC().Year()
	if p, err := pendingOf(ctx, tx, origID); err != nil {
		return ReversalResult{}, err
	} else if p != nil && p.status != pendingVested {
		return s.cancelPending(ctx, tx, m, *p, bdRaw, key, reason, now)
	} else if p != nil {
		posted, statusYear = p.settledTx, p.settledAt.UTC().Year()
	}
	var orig Breakdown
	if err := json.Unmarshal([]byte(bdRaw), &orig); err != nil {
		return ReversalResult{}, fmt.Errorf("decode earning breakdown: %w", err)
	}
	var points int64
	if err := tx.QueryRowContext(ctx, `SELECT amount FROM loyalty_postings WHERE transaction_id = $1 AND account = $2`,
		posted, MemberAccount(m.ID)).Scan(&points); err != nil {
		return ReversalResult{}, fmt.Errorf("earning posting: %w", err)
	}
	st, err := s.revertStatus(ctx, tx, m, origID, orig.StatusPoints, statusYear)
	if err != nil {
		return ReversalResult{}, err
	}
	txID, err := s.debit(ctx, tx, m, debitOf{typ: TxReversal, key: key, to: AccountIssuance, points: points, preferTx: posted, now: now,
		bd: Breakdown{ReversedTransaction: origID, StatusPointsReverted: st.reverted, Reason: reason, ExternalID: orig.ExternalID},
		set: ledger.Stmt{SQL: "status_points = $1::bigint, prev_status_points = $2::bigint, tier = $3::text, updated_at = $4::bigint",
			Args: []any{st.statusPoints, st.prevStatusPoints, st.tier, db.Micros(now)}}})
	if err != nil {
		return ReversalResult{}, err
	}
	for _, p := range orig.Promotions {
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_promotion_awards SET points = points - $3, times = times - 1
			WHERE promotion_id = $1 AND member_id = $2 AND times > 0`, p.ID, m.ID, p.Points); err != nil {
			return ReversalResult{}, err
		}
		if err := returnBudget(ctx, tx, p.ID, p.Points); err != nil {
			return ReversalResult{}, err
		}
	}
	evs, err := s.event(ctx, events.PointsReversed, m.ID, now, events.PointsReversedData{
		MemberID: m.ID, TransactionID: txID, ReversedTransactionID: origID, Points: -points, Reason: reason, Balance: m.Balance - points})
	if err != nil {
		return ReversalResult{}, err
	}
	tc, err := s.tierChange(ctx, m.ID, m.Tier, st.tier, events.ReasonReversal, st.statusPoints, now)
	if err != nil {
		return ReversalResult{}, err
	}
	if err := s.emit(ctx, tx, append(evs, tc...)...); err != nil {
		return ReversalResult{}, err
	}
	return ReversalResult{
		TransactionID: txID, ReversedTransactionID: origID, MemberID: m.ID, PointsReversed: points,
		StatusPointsReversed: st.reverted, NewBalance: m.Balance - points, Tier: st.tier, Reason: reason,
		Actor: actorOf(ctx), TraceID: traceIDOf(ctx), CreatedAt: now,
	}, nil
}

// priorReversal finds an earlier reversal of origID (idempotency key key)
// and returns it Replayed; found is false when there is none.
func priorReversal(ctx context.Context, tx *db.Tx, m Member, origID, key string) (ReversalResult, bool, error) {
	var (
		prevID, prevBD, prevActor, prevTrace string
		prevAmount, prevAt                   int64
	)
	err := tx.QueryRowContext(ctx, `SELECT t.id, t.breakdown, t.actor, t.trace_id, t.created_at, p.amount FROM loyalty_transactions t
		JOIN loyalty_postings p ON p.transaction_id = t.id AND p.account = $2 WHERE t.idempotency_key = $1`, key, MemberAccount(m.ID)).
		Scan(&prevID, &prevBD, &prevActor, &prevTrace, &prevAt, &prevAmount)
	if errors.Is(err, sql.ErrNoRows) {
		return ReversalResult{}, false, nil
	}
	if err != nil {
		return ReversalResult{}, false, err
	}
	var bd Breakdown
	if err := json.Unmarshal([]byte(prevBD), &bd); err != nil {
		return ReversalResult{}, false, fmt.Errorf("decode reversal breakdown: %w", err)
	}
	return ReversalResult{
		TransactionID: prevID, ReversedTransactionID: origID, MemberID: m.ID, PointsReversed: -prevAmount,
		StatusPointsReversed: bd.StatusPointsReverted, NewBalance: m.Balance, Tier: m.Tier, Reason: bd.Reason,
		Actor: prevActor, TraceID: prevTrace, CreatedAt: db.FromMicros(prevAt), Replayed: true,
	}, true, nil
}

// statusAfterReversal is the member's status after a reversal.
type statusAfterReversal struct {
	statusPoints, prevStatusPoints int64
	reverted                       int64
	tier                           string
}

// revertStatus takes an earning's status points sp off the year they
// counted in, unless the year-end job has already requalified on them, and
// undoes the tier upgrade they caused.
func (s *Service) revertStatus(ctx context.Context, tx *db.Tx, m Member, origID string, sp int64, year int) (statusAfterReversal, error) {
	var st statusAfterReversal
	var statusYear, prevStatusYear, requalified int
	if err := tx.QueryRowContext(ctx, `SELECT status_points, status_year, prev_status_points, prev_status_year, requalified_year
		FROM loyalty_members WHERE id = $1`, m.ID).Scan(&st.statusPoints, &statusYear, &st.prevStatusPoints, &prevStatusYear, &requalified); err != nil {
		return st, err
	}
	st.tier = m.Tier
	switch {
	case sp == 0 || requalified >= year:
	case statusYear == year:
		st.statusPoints -= sp
		st.reverted = sp
		st.tier = s.tierAfterReversal(ctx, tx, m, origID, st.statusPoints)
	case prevStatusYear == year:
		st.prevStatusPoints -= sp
		st.reverted = sp
	}
	return st, nil
}

// tierAfterReversal undoes the tier upgrade an earning caused when the
// member is still at that tier and the remaining status points no longer
// reach it: the member returns to the higher of the tier they earned at
// and the tier the remaining points reach.
func (s *Service) tierAfterReversal(ctx context.Context, tx *db.Tx, m Member, origID string, statusPoints int64) string {
	var stored string
	if err := tx.QueryRowContext(ctx, `SELECT result FROM loyalty_activities WHERE transaction_id = $1`, origID).Scan(&stored); err != nil {
		return m.Tier
	}
	var r EarnResult
	if json.Unmarshal([]byte(stored), &r) != nil || r.NewTier == "" || r.NewTier != m.Tier {
		return m.Tier
	}
	cur, ok := s.prog.Tier(m.Tier)
	if !ok {
		return m.Tier
	}
	reach := s.prog.TierFor(statusPoints)
	if reach.Rank >= cur.Rank {
		return m.Tier
	}
	if before, ok := s.prog.Tier(r.EarnedAtTier); ok && before.Rank > reach.Rank {
		return before.ID
	}
	return reach.ID
}

// ReversePurchase reverses the points credited for a shop order (the
// checkout refund calls it). Nothing earned for the order is a no-op, and a
// second call changes nothing.
func (s *Service) ReversePurchase(ctx context.Context, memberID, orderID string) error {
	var txID, owner string
	err := s.db.Read().QueryRowContext(ctx, `SELECT transaction_id, member_id FROM loyalty_activities WHERE source = 'shop' AND external_id = $1`,
		"order:"+orderID).Scan(&txID, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return internal("reverse purchase", err)
	}
	if owner != memberID {
		return errs.Coded(errs.Conflict, "order_member_mismatch", "order %s earned points for another member", orderID)
	}
	_, err = s.ReverseTransaction(ctx, txID, "order "+orderID+" refunded")
	return err
}

// AdjustmentResult is the outcome of a manual adjustment.
type AdjustmentResult struct {
	TransactionID string    `json:"transaction_id"`
	MemberID      string    `json:"member_id"`
	Points        int64     `json:"points"`
	NewBalance    int64     `json:"new_balance"`
	Reason        string    `json:"reason"`
	Actor         string    `json:"actor"`
	TraceID       string    `json:"trace_id"`
	CreatedAt     time.Time `json:"created_at"`
	// EffectiveAt is when the adjustment takes effect: CreatedAt, or the
	// earlier time of a backdated adjustment (AdjustAt).
	EffectiveAt time.Time `json:"effective_at"`
}

// Adjust credits (points > 0) or debits (points < 0) a member by hand,
// against program:issuance. The reason is required and stored with the
// actor. A debit may take the balance below zero (a correction of points
// already spent); status points are never touched.
func (s *Service) Adjust(ctx context.Context, memberID string, points int64, reason string) (res AdjustmentResult, err error) {
	return s.AdjustAt(ctx, memberID, points, reason, time.Time{})
}

// AdjustAt is Adjust taking effect at effectiveAt (zero: now), which may be
// in the past, back to when the member joined (a backdated adjustment, see
// asof.go).
func (s *Service) AdjustAt(ctx context.Context, memberID string, points int64, reason string, effectiveAt time.Time) (res AdjustmentResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.adjust_points", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", TxAdjustment),
		attribute.Int64("loyalty.points", points),
	))
	defer func() { endWithResult(span, "loyalty.result", "adjusted", false, err) }()
	if reason, err = validateReason(reason); err != nil {
		return AdjustmentResult{}, err
	}
	if points == 0 || points > program.MaxActivityPoints || points < -program.MaxActivityPoints {
		return AdjustmentResult{}, errs.Coded(errs.Unprocessable, "invalid_points", "points must be non-zero and at most %d either way", program.MaxActivityPoints).
			With("field", "points")
	}
	now := s.now().UTC()
	res = AdjustmentResult{MemberID: memberID, Points: points, Reason: reason, Actor: actorOf(ctx), TraceID: traceIDOf(ctx), CreatedAt: now}
	if res.EffectiveAt, err = effectiveTime(effectiveAt, now); err != nil {
		return AdjustmentResult{}, err
	}
	err = s.updateMember(ctx, memberID, func(ctx context.Context, tx *db.Tx, m Member) (err error) {
		if err := checkBackdate(m, res.EffectiveAt); err != nil {
			return err
		}
		defer func() {
			if err == nil {
				err = backdate(ctx, tx, res.TransactionID, res.EffectiveAt, now)
			}
		}()
		if points > 0 {
			res.TransactionID, err = s.credit(ctx, tx, m, creditOf{typ: TxAdjustment, from: AccountIssuance, points: points,
				bd: Breakdown{Reason: reason}, now: now})
		} else {
			res.TransactionID, err = s.debit(ctx, tx, m, debitOf{typ: TxAdjustment, to: AccountIssuance, points: -points,
				bd: Breakdown{Reason: reason}, now: now})
		}
		res.NewBalance = m.Balance + points
		return err
	})
	if err != nil {
		return AdjustmentResult{}, internal("adjust", err)
	}
	span.SetAttributes(attribute.String("loyalty.transaction_id", res.TransactionID), attribute.Int64("loyalty.new_balance", res.NewBalance))
	return res, nil
}
