package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Lots hold max(ledger balance, 0) of a member: a member who owes points
// (after a reversal took back points already spent) has no lots, and the
// debt is not a lot. LotCredit and LotDebit say how much of a credit or
// debit of points changes the lots, given the ledger balance before it: a
// credit first repays a debt, and a debit empties the lots but never
// overdraws them.
func LotCredit(ledger, points Points) Points { return max(ledger+points, 0) - max(ledger, 0) }

// LotDebit is the share of a debit of points that the lots give up (see LotCredit).
func LotDebit(ledger, points Points) Points { return max(ledger, 0) - max(ledger-points, 0) }

// LotUse records how much of a lot a debit consumed.
type LotUse struct {
	LotID  string `json:"lot_id"`
	Points int64  `json:"points"`
}

// Lot is points a member got in one transaction, which expire together.
type Lot struct {
	ID, MemberID, TransactionID string
	Points                      Points
	EarnedAt, ExpiresAt         time.Time
}

// InsertLot writes a new lot; a lot of no points is not written.
func InsertLot(ctx context.Context, tx *db.Tx, l Lot) error {
	if l.Points <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_lots (id, member_id, transaction_id, points, remaining, earned_at, expires_at)
		VALUES ($1, $2, $3, $4, $4, $5, $6)`, l.ID, l.MemberID, l.TransactionID, l.Points, db.Micros(l.EarnedAt), db.Micros(l.ExpiresAt))
	return err
}

// ConsumeLots takes points from the member's lots, soonest-expiring first
// (ties by earning order, then id), and says which lots gave how much. The
// lots of transaction preferTx, if any, go first (a reversal takes back its
// own lot before others). Callers pass LotDebit's share of a debit, so a
// member whose ledger balance goes negative has their lots emptied, not
// overdrawn. Lots that hold too few points are an error: the books are
// broken.
func ConsumeLots(ctx context.Context, tx *db.Tx, memberID string, points Points, preferTx string) ([]LotUse, error) {
	var uses []LotUse
	if points <= 0 {
		return uses, nil // nothing to take, and no query to make
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots
		WHERE member_id = $1 AND remaining > 0
		ORDER BY CASE WHEN transaction_id = $2 THEN 0 ELSE 1 END, expires_at, earned_at, id`, memberID, preferTx)
	if err != nil {
		return nil, err
	}
	uses, left, err := takeFromLots(rows, points)
	if err != nil {
		return nil, err
	}
	if left > 0 {
		return nil, fmt.Errorf("ledger: member %s lots hold %d points too few for a %d-point debit", memberID, left, points)
	}
	if err := debitLots(ctx, tx, uses); err != nil {
		return nil, err
	}
	return uses, nil
}

// LotRows are rows of (lot id, remaining points) in the order to take from.
type LotRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// takeFromLots reads lots in order until points are taken, and closes rows.
// It returns what each lot gives and what is left untaken.
func takeFromLots(rows LotRows, points Points) ([]LotUse, Points, error) {
	var uses []LotUse
	left := points
	for left > 0 && rows.Next() {
		var u LotUse
		var remaining int64
		if err := rows.Scan(&u.LotID, &remaining); err != nil {
			rows.Close()
			return nil, 0, err
		}
		u.Points = min(remaining, int64(left))
		left -= Points(u.Points)
		uses = append(uses, u)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, 0, err
	}
	return uses, left, rows.Close()
}

// TakeFromLots is ConsumeLots for lots the caller chose: it takes up to
// points from rows (lot id, remaining), in their order, and writes what it
// took. It returns the uses, which may hold less than points.
func TakeFromLots(ctx context.Context, tx *db.Tx, rows LotRows, points Points) ([]LotUse, error) {
	uses, _, err := takeFromLots(rows, points)
	if err != nil {
		return nil, err
	}
	return uses, debitLots(ctx, tx, uses)
}

// debitLots writes what each lot gave.
func debitLots(ctx context.Context, tx *db.Tx, uses []LotUse) error {
	for _, u := range uses {
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_lots SET remaining = remaining - $2 WHERE id = $1`, u.LotID, u.Points); err != nil {
			return err
		}
	}
	return nil
}

// Used sums what the uses took.
func Used(uses []LotUse) Points {
	var n Points
	for _, u := range uses {
		n += Points(u.Points)
	}
	return n
}
