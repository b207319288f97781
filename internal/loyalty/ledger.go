package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// ledgerWrites books the ledger's hot multi-table writes — an earning, a
// hold, a capture — the way the engine does them fastest; everything the
// writes decide is decided before they are called, the same on both
// engines. On PostgreSQL (ledger_postgres.go) each is one statement of
// data-modifying CTEs: one network round trip where the sequence would take
// four to seven, with the member's row locked from its first statement to
// the commit (TestRedeemRoundTrips and friends count the round trips). On
// SQLite (ledger_sqlite.go), which has no data-modifying CTEs and no
// network, each is a sequence of plain statements. TestEnginesWriteSameRows
// runs every write path on both and compares the rows they leave.
type ledgerWrites interface {
	// earn writes an earning (see earnWrite); bd and stored are its
	// breakdown and result as JSON.
	earn(ctx context.Context, tx *db.Tx, w *earnWrite, bd, stored string) error
	// placeHold is placeHold.
	placeHold(ctx context.Context, tx *db.Tx, p holdPlacement) (balance int64, placed bool, err error)
	// captureHold writes a capture (see captureHoldTx), or returns
	// errHoldNotPending having written nothing.
	captureHold(ctx context.Context, tx *db.Tx, c holdCapture) error
}

// writesFor returns the ledger writer for tx's engine.
func writesFor(tx *db.Tx) ledgerWrites {
	if tx.Dialect().WritableCTEs() {
		return pgWrites{}
	}
	return sqliteWrites{}
}

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

// holdPlacement is what placing a hold writes: the member's balance moves to
// held and the hold row is inserted; for a redemption, its row too.
type holdPlacement struct {
	holdID, memberID, reference string
	points                      int64
	now, expires                time.Time
	// guardTier, when set, is the tier the points were priced at: the hold is
	// placed only if the member still has it (and, with guardStatus, still
	// has statusPoints, for a tier priced by status points).
	guardTier    string
	guardStatus  bool
	statusPoints int64
	redemption   *redemptionRow
}

// redemptionRow is a pending redemption written with its hold.
type redemptionRow struct {
	id, optionID, optionType string
	listPoints, discount     int64
	reference                sql.NullString
	traceID                  string
}

// placeHold places a hold if the member can afford it: the member's update
// is guarded by balance >= 0 and balance >= points (and the tier guard), so
// it may run before the caller holds the member's row lock — the update takes
// it, and PostgreSQL re-checks the guard against the newest row. It returns
// the member's spendable balance afterwards and false, with nothing written,
// when the guard fails or the member does not exist.
func placeHold(ctx context.Context, tx *db.Tx, p holdPlacement) (int64, bool, error) {
	return writesFor(tx).placeHold(ctx, tx, p)
}

// guardArgs returns the arguments every engine's hold statement takes and
// the guard on the member's row for them, with PostgreSQL's casts (SQLite's
// writer drops them).
func (p holdPlacement) guardArgs() ([]any, string) {
	args := []any{p.holdID, p.memberID, p.points, p.reference, db.Micros(p.now), db.Micros(p.expires)} // 1–6
	guard := ""
	if p.guardTier != "" {
		args = append(args, p.guardTier)
		guard += fmt.Sprintf(" AND tier = $%d::text", len(args))
		if p.guardStatus {
			args = append(args, p.statusPoints)
			guard += fmt.Sprintf(" AND status_points = $%d::bigint", len(args))
		}
	}
	return args, guard
}

// insertHold reserves points of a member whose row the transaction has
// locked and whose balance the caller has checked.
func (s *Service) insertHold(ctx context.Context, tx *db.Tx, memberID string, points int64, reference string, now time.Time) (string, error) {
	id := newID()
	_, ok, err := placeHold(ctx, tx, holdPlacement{holdID: id, memberID: memberID, points: points, reference: reference,
		now: now, expires: now.Add(s.holdTTL)})
	if err == nil && !ok {
		err = fmt.Errorf("ledger: member %s cannot cover a %d-point hold it was checked for", memberID, points)
	}
	return id, err
}

// errHoldNotPending is captureHoldTx's answer when the hold is no longer
// pending (voided by the reaper, or captured already); nothing was written.
var errHoldNotPending = errors.New("ledger: hold is not pending")

// settleRow is the row of the operation a capture completes (a redemption
// or a partner transfer): it gets status, confirmation, the transaction and
// the new balance in the capture's transaction.
type settleRow struct {
	table        string // loyalty_redemptions or loyalty_transfers
	id           string
	status       string
	confirmation string
}

// captureHoldTx posts a pending hold of member m (locked by the caller): the
// points leave the member's account for creditAccount in a transaction of
// type txType, and the member's lots are consumed soonest-expiring first. bd
// is completed with the hold and the lots. settle, if not nil, is marked
// settled too. It returns the transaction id and the member's spendable
// balance afterwards, or errHoldNotPending, having written nothing, when the
// hold is not pending: h's ID, MemberID, Points and Reference must be right,
// its Status need not be current.
func captureHoldTx(ctx context.Context, tx *db.Tx, h Hold, m Member, txType, creditAccount string, bd Breakdown, now time.Time, settle *settleRow) (string, int64, error) {
	ledger := m.Balance + m.Pending
	bd.HoldID, bd.Reference = h.ID, h.Reference
	c := holdCapture{
		hold: h, member: m, txID: newID(), txType: txType, creditAccount: creditAccount, breakdown: bd,
		debit: lotDebit(ledger, h.Points), ledgerAfter: ledger - h.Points,
		now: now, lastActivity: db.Micros(laterOf(m.LastActivityAt, now)), settle: settle,
	}
	if err := writesFor(tx).captureHold(ctx, tx, c); err != nil {
		return "", 0, err
	}
	return c.txID, m.Balance, nil
}

// holdCapture is everything a capture writes (see captureHoldTx).
type holdCapture struct {
	hold          Hold
	member        Member
	txID, txType  string
	creditAccount string
	breakdown     Breakdown // without the lots, which the writer picks
	debit         int64     // what the lots give up (lotDebit)
	ledgerAfter   int64     // the member account's balance after the posting
	now           time.Time
	lastActivity  int64 // micros
	settle        *settleRow
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
