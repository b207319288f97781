package ledger

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Balance is a member's cached balance: Spendable points, and Held ones
// reserved by pending holds. The member account's postings sum to
// Spendable + Held, the ledger balance.
type Balance struct {
	Spendable, Held Points
}

// Ledger is the member account's balance: what its postings sum to.
func (b Balance) Ledger() Points { return b.Spendable + b.Held }

// ReadBalance reads a member's balance, locking the member's row until the
// transaction ends when lock is set.
func ReadBalance(ctx context.Context, tx *db.Tx, memberID string, lock bool) (Balance, error) {
	suffix := ""
	if lock {
		suffix = tx.ForUpdate()
	}
	var b Balance
	err := tx.QueryRowContext(ctx, `SELECT balance, held FROM loyalty_members WHERE id = $1`+suffix, memberID).Scan(&b.Spendable, &b.Held)
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{}, ErrMemberNotFound
	}
	return b, err
}

// AddToBalance moves a member's spendable balance by points, with set (the
// caller's SET clause beside the balance; empty, updated_at = at). The
// caller has posted the transaction that moves it.
func AddToBalance(ctx context.Context, tx *db.Tx, memberID string, points Points, at time.Time, set Stmt) error {
	set = memberSet(set, at)
	q := `UPDATE loyalty_members SET balance = balance + $2, ` + set.at(2, "") + ` WHERE id = $1`
	if !tx.Dialect().WritableCTEs() {
		q = NoCasts(q)
	}
	_, err := tx.ExecContext(ctx, q, append([]any{memberID, points}, set.Args...)...)
	return err
}
