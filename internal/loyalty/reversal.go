package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
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
	TransactionID         string    `json:"transaction_id"`
	ReversedTransactionID string    `json:"reversed_transaction_id"`
	MemberID              string    `json:"member_id"`
	PointsReversed        int64     `json:"points_reversed"`
	StatusPointsReversed  int64     `json:"status_points_reversed"`
	NewBalance            int64     `json:"new_balance"`
	Tier                  string    `json:"tier"`
	Reason                string    `json:"reason"`
	Actor                 string    `json:"actor"`
	TraceID               string    `json:"trace_id"`
	CreatedAt             time.Time `json:"created_at"`
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
	defer func() {
		result := "reversed"
		switch {
		case err != nil:
			result = errs.CodeOf(err)
		case res.Replayed:
			result = "replayed"
		}
		span.SetAttributes(attribute.String("loyalty.result", result))
		endSpan(span, err)
	}()
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

func (s *Service) reverseTx(ctx context.Context, tx *db.Tx, m Member, origID, bdRaw string, origAt time.Time, key, reason string, now time.Time) (ReversalResult, error) {
	// An earlier reversal?
	var (
		prevID, prevBD, prevActor, prevTrace string
		prevAmount, prevAt                   int64
	)
	err := tx.QueryRowContext(ctx, `SELECT t.id, t.breakdown, t.actor, t.trace_id, t.created_at, p.amount FROM loyalty_transactions t
		JOIN loyalty_postings p ON p.transaction_id = t.id AND p.account = $2 WHERE t.idempotency_key = $1`, key, MemberAccount(m.ID)).
		Scan(&prevID, &prevBD, &prevActor, &prevTrace, &prevAt, &prevAmount)
	if err == nil {
		var bd Breakdown
		if err := json.Unmarshal([]byte(prevBD), &bd); err != nil {
			return ReversalResult{}, fmt.Errorf("decode reversal breakdown: %w", err)
		}
		return ReversalResult{
			TransactionID: prevID, ReversedTransactionID: origID, MemberID: m.ID, PointsReversed: -prevAmount,
			StatusPointsReversed: bd.StatusPointsReverted, NewBalance: m.Balance, Tier: m.Tier, Reason: bd.Reason,
			Actor: prevActor, TraceID: prevTrace, CreatedAt: db.FromMicros(prevAt), Replayed: true,
		}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return ReversalResult{}, err
	}

	var orig Breakdown
	if err := json.Unmarshal([]byte(bdRaw), &orig); err != nil {
		return ReversalResult{}, fmt.Errorf("decode earning breakdown: %w", err)
	}
	var points int64
	if err := tx.QueryRowContext(ctx, `SELECT amount FROM loyalty_postings WHERE transaction_id = $1 AND account = $2`,
		origID, MemberAccount(m.ID)).Scan(&points); err != nil {
		return ReversalResult{}, fmt.Errorf("earning posting: %w", err)
	}

	// Status points come off the year they counted in, unless the year-end
	// job has already requalified on them.
	var statusPoints, prevStatusPoints int64
	var statusYear, prevStatusYear, requalified int
	if err := tx.QueryRowContext(ctx, `SELECT status_points, status_year, prev_status_points, prev_status_year, requalified_year
		FROM loyalty_members WHERE id = $1`, m.ID).Scan(&statusPoints, &statusYear, &prevStatusPoints, &prevStatusYear, &requalified); err != nil {
		return ReversalResult{}, err
	}
	sp := orig.StatusPoints
	year := origAt.UTC().Year()
	var reverted int64
	tier := m.Tier
	switch {
	case sp == 0 || requalified >= year:
	case statusYear == year:
		statusPoints -= sp
		reverted = sp
		tier = s.tierAfterReversal(ctx, tx, m, origID, statusPoints)
	case prevStatusYear == year:
		prevStatusPoints -= sp
		reverted = sp
	}

	ledger := m.Balance + m.Pending
	lots, err := consumeLots(ctx, tx, m.ID, lotDebit(ledger, points), origID)
	if err != nil {
		return ReversalResult{}, err
	}
	res := ReversalResult{
		TransactionID: newID(), ReversedTransactionID: origID, MemberID: m.ID, PointsReversed: points,
		StatusPointsReversed: reverted, NewBalance: m.Balance - points, Tier: tier, Reason: reason,
		Actor: actorOf(ctx), TraceID: traceIDOf(ctx), CreatedAt: now,
	}
	bd, err := json.Marshal(Breakdown{ReversedTransaction: origID, StatusPointsReverted: reverted, Reason: reason, Lots: lots, ExternalID: orig.ExternalID})
	if err != nil {
		return ReversalResult{}, err
	}
	after := ledger - points
	if err := insertTransaction(ctx, tx, res.TransactionID, TxReversal, m.ID, key, string(bd), res.Actor, res.TraceID, now,
		posting{MemberAccount(m.ID), -points, &after}, posting{AccountIssuance, points, nil}); err != nil {
		return ReversalResult{}, err
	}
	for _, p := range orig.Promotions {
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_promotion_awards SET points = points - $3, times = times - 1
			WHERE promotion_id = $1 AND member_id = $2 AND times > 0`, p.ID, m.ID, p.Points); err != nil {
			return ReversalResult{}, err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance - $2, status_points = $3, prev_status_points = $4, tier = $5,
		updated_at = $6 WHERE id = $1`, m.ID, points, statusPoints, prevStatusPoints, tier, db.Micros(now))
	return res, err
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
}

// Adjust credits (points > 0) or debits (points < 0) a member by hand,
// against program:issuance. The reason is required and stored with the
// actor. A debit may take the balance below zero (a correction of points
// already spent); status points are never touched.
func (s *Service) Adjust(ctx context.Context, memberID string, points int64, reason string) (res AdjustmentResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.adjust_points", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", TxAdjustment),
		attribute.Int64("loyalty.points", points),
	))
	defer func() {
		result := "adjusted"
		if err != nil {
			result = errs.CodeOf(err)
		}
		span.SetAttributes(attribute.String("loyalty.result", result))
		endSpan(span, err)
	}()
	if reason, err = validateReason(reason); err != nil {
		return AdjustmentResult{}, err
	}
	if points == 0 || points > program.MaxActivityPoints || points < -program.MaxActivityPoints {
		return AdjustmentResult{}, errs.Coded(errs.Unprocessable, "invalid_points", "points must be non-zero and at most %d either way", program.MaxActivityPoints).
			With("field", "points")
	}
	now := s.now().UTC()
	res = AdjustmentResult{MemberID: memberID, Points: points, Reason: reason, Actor: actorOf(ctx), TraceID: traceIDOf(ctx), CreatedAt: now}
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		m, err := lockMember(ctx, tx, memberID)
		if err != nil {
			return err
		}
		ledger := m.Balance + m.Pending
		var lots []LotUse
		if points < 0 {
			if lots, err = consumeLots(ctx, tx, m.ID, lotDebit(ledger, -points), ""); err != nil {
				return err
			}
		}
		res.TransactionID = newID()
		bd, err := json.Marshal(Breakdown{Reason: reason, Lots: lots})
		if err != nil {
			return err
		}
		after := ledger + points
		if err := insertTransaction(ctx, tx, res.TransactionID, TxAdjustment, m.ID, "", string(bd), res.Actor, res.TraceID, now,
			posting{MemberAccount(m.ID), points, &after}, posting{AccountIssuance, -points, nil}); err != nil {
			return err
		}
		if points > 0 {
			if err := insertLot(ctx, tx, m.ID, res.TransactionID, lotCredit(ledger, points), now, s.prog.ExpiryFor(now)); err != nil {
				return err
			}
		}
		res.NewBalance = m.Balance + points
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, updated_at = $3 WHERE id = $1`, m.ID, points, db.Micros(now))
		return err
	})
	if err != nil {
		return AdjustmentResult{}, internal("adjust", err)
	}
	span.SetAttributes(attribute.String("loyalty.transaction_id", res.TransactionID), attribute.Int64("loyalty.new_balance", res.NewBalance))
	return res, nil
}
