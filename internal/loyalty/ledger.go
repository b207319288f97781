package loyalty

import (
	"context"
	"encoding/json"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Transaction types added by Loyalty II.
const (
	TxTransfer      = "transfer"
	TxPartnerCredit = "partner_credit"
	TxExpire        = "expire"
	TxReversal      = "reversal"
	TxAdjustment    = "adjustment"
)

// Lots hold max(ledger balance, 0) of a member, where the ledger balance is
// Balance + Pending. A reversal may take a member's ledger balance below
// zero; the debt is not a lot. lotCredit and lotDebit say how much of a
// credit or debit of points changes the lots, given the ledger balance
// before it: a credit first repays a debt, and a debit empties the lots but
// never overdraws them.
func lotCredit(ledger, points int64) int64 { return max(ledger+points, 0) - max(ledger, 0) }

func lotDebit(ledger, points int64) int64 { return max(ledger, 0) - max(ledger-points, 0) }

// insertLot writes a new lot; a lot of no points is not written.
func insertLot(ctx context.Context, tx *db.Tx, memberID, txID string, points int64, earnedAt, expiresAt time.Time) error {
	if points <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_lots (id, member_id, transaction_id, points, remaining, earned_at, expires_at)
		VALUES ($1, $2, $3, $4, $4, $5, $6)`, newID(), memberID, txID, points, db.Micros(earnedAt), db.Micros(expiresAt))
	return err
}

// negativeBalance is the rejection of a debit while the member owes points.
func negativeBalance(m Member) error {
	return errs.Coded(errs.Unprocessable, "negative_balance",
		"the member's balance is %d: points owed must be repaid before spending or transferring", m.Balance).
		With("current_balance", m.Balance)
}

func insufficientPoints(m Member, points int64) error {
	return errs.Coded(errs.Unprocessable, "insufficient_points",
		"the member has %d spendable points; %d are needed", m.Balance, points).
		With("points_short", points-m.Balance).With("current_balance", m.Balance)
}

// insertHold reserves points of a member whose row the transaction has
// locked and whose balance the caller has checked.
func (s *Service) insertHold(ctx context.Context, tx *db.Tx, memberID string, points int64, reference string, now time.Time) (string, error) {
	id := newID()
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance - $2, held = held + $2, updated_at = $3 WHERE id = $1`,
		memberID, points, db.Micros(now)); err != nil {
		return "", err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_holds (id, member_id, points, reference, status, created_at, expires_at, updated_at)
		VALUES ($1, $2, $3, $4, 'pending', $5, $6, $5)`, id, memberID, points, reference, db.Micros(now), db.Micros(now.Add(s.holdTTL)))
	return id, err
}

// captureHoldTx posts a pending hold of member m (locked by the caller): the
// points leave the member's account for creditAccount in a transaction of
// type txType, and the member's lots are consumed. bd is completed with the
// hold and the lots. It returns the transaction id and the member's
// spendable balance afterwards.
func captureHoldTx(ctx context.Context, tx *db.Tx, h Hold, m Member, txType, creditAccount string, bd Breakdown, now time.Time) (string, int64, error) {
	ledger := m.Balance + m.Pending
	lots, err := consumeLots(ctx, tx, m.ID, lotDebit(ledger, h.Points), "")
	if err != nil {
		return "", 0, err
	}
	txID := newID()
	bd.HoldID, bd.Reference, bd.Lots = h.ID, h.Reference, lots
	raw, err := json.Marshal(bd)
	if err != nil {
		return "", 0, err
	}
	ledgerAfter := ledger - h.Points
	if err := insertTransaction(ctx, tx, txID, txType, m.ID, "capture:"+h.ID, string(raw), actorOf(ctx), traceIDOf(ctx), now,
		posting{MemberAccount(m.ID), -h.Points, &ledgerAfter}, posting{creditAccount, h.Points, nil}); err != nil {
		return "", 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_holds SET status = 'captured', transaction_id = $2, updated_at = $3 WHERE id = $1`,
		h.ID, txID, db.Micros(now)); err != nil {
		return "", 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET held = held - $2, last_activity_at = $3, updated_at = $3 WHERE id = $1`,
		m.ID, h.Points, db.Micros(laterOf(m.LastActivityAt, now))); err != nil {
		return "", 0, err
	}
	return txID, m.Balance, nil
}

// voidHoldTx gives a pending hold's points back to the spendable balance;
// the caller holds the member's row lock.
func voidHoldTx(ctx context.Context, tx *db.Tx, h Hold, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_holds SET status = 'voided', updated_at = $2 WHERE id = $1`, h.ID, db.Micros(now)); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, held = held - $2, updated_at = $3 WHERE id = $1`,
		h.MemberID, h.Points, db.Micros(now))
	return err
}

// laterOf keeps last_activity_at from moving backwards when clocks differ.
func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// lockMembersSorted locks two members in id order, so two transfers between
// the same pair in opposite directions cannot deadlock.
func lockMembersSorted(ctx context.Context, tx *db.Tx, a, b string) (Member, Member, error) {
	first, second := a, b
	if second < first {
		first, second = second, first
	}
	m1, err := lockMember(ctx, tx, first)
	if err != nil {
		return Member{}, Member{}, err
	}
	m2, err := lockMember(ctx, tx, second)
	if err != nil {
		return Member{}, Member{}, err
	}
	if first == a {
		return m1, m2, nil
	}
	return m2, m1, nil
}
