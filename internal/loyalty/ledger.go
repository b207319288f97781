package loyalty

import (
	"context"
	"encoding/json"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
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

// LotUse records how much of a lot a debit consumed.
type LotUse = ledger.LotUse

// withLots is the breakdown's JSON with lots: a capture's Describe.
func (bd Breakdown) withLots(lots []LotUse) ([]byte, error) {
	bd.Lots = lots
	return json.Marshal(bd)
}

// balanceOf is the member's balance as the ledger sees it.
func balanceOf(m Member) ledger.Balance {
	return ledger.Balance{Spendable: ledger.Points(m.Balance), Held: ledger.Points(m.Pending)}
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

// touch is the SET clause of a member's row for an activity at now:
// last_activity_at moves forward (never back when clocks differ).
func touch(m Member, now time.Time) ledger.Stmt {
	return ledger.Stmt{SQL: "last_activity_at = $1::bigint, updated_at = $2::bigint",
		Args: []any{db.Micros(laterOf(m.LastActivityAt, now)), db.Micros(now)}}
}

// creditOf is a credit of points to a member from another account.
type creditOf struct {
	typ, key, from string
	points         int64
	bd             Breakdown
	now            time.Time
	// set is the SET clause of the member's row beside the balance; empty,
	// updated_at = now.
	set ledger.Stmt
}

// credit books c for member m (locked by the caller): the transaction, a
// lot of what does not repay a debt, the member's balance. It returns the
// transaction id.
func (s *Service) credit(ctx context.Context, tx *db.Tx, m Member, c creditOf) (string, error) {
	bd, err := json.Marshal(c.bd)
	if err != nil {
		return "", err
	}
	id := newID()
	return id, ledger.PostCredit(ctx, tx, ledger.Credit{
		ID: id, Type: c.typ, MemberID: m.ID, Key: c.key, Breakdown: string(bd), Actor: actorOf(ctx), TraceID: traceIDOf(ctx),
		At: c.now, From: c.from, Points: ledger.Points(c.points), Before: balanceOf(m),
		LotID: newID(), LotExpires: s.prog.ExpiryFor(c.now), MemberSet: c.set,
	})
}

// debitOf is a debit of points from a member to another account.
type debitOf struct {
	typ, key, to string
	points       int64
	// preferTx's lots are taken first (a reversal takes back its own lot).
	preferTx string
	bd       Breakdown // completed with the lots taken
	now      time.Time
	// set is the SET clause of the member's row beside the balance; empty,
	// updated_at = now.
	set ledger.Stmt
}

// debit books d for member m (locked by the caller; the caller has checked
// what may be debited): the lots give up their share soonest-expiring first,
// the transaction, the member's balance. It returns the transaction id.
func (s *Service) debit(ctx context.Context, tx *db.Tx, m Member, d debitOf) (string, error) {
	before := balanceOf(m)
	points := ledger.Points(d.points)
	lots, err := ledger.ConsumeLots(ctx, tx, m.ID, ledger.LotDebit(before.Ledger(), points), d.preferTx)
	if err != nil {
		return "", err
	}
	d.bd.Lots = lots
	bd, err := json.Marshal(d.bd)
	if err != nil {
		return "", err
	}
	id := newID()
	if err := ledger.Post(ctx, tx, ledger.Transaction{ID: id, Type: d.typ, MemberID: m.ID, Key: d.key, Breakdown: string(bd),
		Actor: actorOf(ctx), TraceID: traceIDOf(ctx), At: d.now,
		Postings: []ledger.Posting{ledger.Member(m.ID, -points, before.Ledger()-points), ledger.To(d.to, points)}}); err != nil {
		return "", err
	}
	return id, ledger.AddToBalance(ctx, tx, m.ID, -points, d.now, d.set)
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
