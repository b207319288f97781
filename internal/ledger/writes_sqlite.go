package ledger

import (
	"context"
	"database/sql"
	"errors"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// sqliteWrites books the ledger's writes on SQLite as sequences of plain
// statements: SQLite has no data-modifying CTEs, and its statements are
// in-process calls with no round trip to save. The write transaction holds
// the database's one write lock, so nothing can change between them.
type sqliteWrites struct{}

// execWith runs the caller's writes, the ledger's having happened.
func execWith(ctx context.Context, tx *db.Tx, with ...Stmt) error {
	for _, w := range with {
		if _, err := tx.ExecContext(ctx, NoCasts(w.at(0, "1 = 1")), w.Args...); err != nil {
			return err
		}
	}
	return nil
}

// updateMember runs UPDATE loyalty_members SET <head>, <set> WHERE id = $1,
// head's parameters being $2… of headArgs.
func updateMember(ctx context.Context, tx *db.Tx, memberID, head string, headArgs []any, set Stmt) error {
	args := append([]any{memberID}, headArgs...)
	q := `UPDATE loyalty_members SET ` + head + `, ` + set.at(len(args), "") + ` WHERE id = $1`
	_, err := tx.ExecContext(ctx, NoCasts(q), append(args, set.Args...)...)
	return err
}

func (sqliteWrites) credit(ctx context.Context, tx *db.Tx, c Credit) error {
	if err := Post(ctx, tx, Transaction{ID: c.ID, Type: c.Type, MemberID: c.MemberID, Key: c.Key, Breakdown: c.Breakdown,
		Actor: c.Actor, TraceID: c.TraceID, At: c.At,
		Postings: []Posting{Member(c.MemberID, c.Points, c.ledgerAfter()), To(c.From, -c.Points)}}); err != nil {
		return err
	}
	if err := updateMember(ctx, tx, c.MemberID, `balance = balance + $2`, []any{c.Points}, memberSet(c.MemberSet, c.At)); err != nil {
		return err
	}
	if err := InsertLot(ctx, tx, Lot{ID: c.LotID, MemberID: c.MemberID, TransactionID: c.ID, Points: c.lotPoints(),
		EarnedAt: c.At, ExpiresAt: c.LotExpires}); err != nil {
		return err
	}
	return execWith(ctx, tx, c.With...)
}

func (sqliteWrites) placeHold(ctx context.Context, tx *db.Tx, p Placement) (Points, bool, error) {
	args, guard := p.args()
	var bal Points
	err := tx.QueryRowContext(ctx, `UPDATE loyalty_members SET balance = balance - $3, held = held + $3, updated_at = $5
		WHERE id = $2 AND balance >= 0 AND balance >= $3`+NoCasts(guard)+`
		RETURNING balance`, args...).Scan(&bal)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_holds (id, member_id, points, reference, status, created_at, expires_at, updated_at)
		VALUES ($1, $2, $3, $4, 'pending', $5, $6, $5)`, args[:6]...); err != nil {
		return 0, false, err
	}
	if p.With != nil {
		if err := execWith(ctx, tx, *p.With); err != nil {
			return 0, false, err
		}
	}
	return bal, true, nil
}

func (sqliteWrites) captureHold(ctx context.Context, tx *db.Tx, c Capture, debit Points) error {
	h := c.Hold
	res, err := tx.ExecContext(ctx, `UPDATE loyalty_holds SET status = 'captured', transaction_id = $2, updated_at = $3
		WHERE id = $1 AND member_id = $4 AND status = 'pending'`, h.ID, c.TxID, db.Micros(c.At), h.MemberID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrHoldNotPending
	}
	lots, err := ConsumeLots(ctx, tx, h.MemberID, debit, "")
	if err != nil {
		return err
	}
	bd, err := c.Describe(lots)
	if err != nil {
		return err
	}
	if err := Post(ctx, tx, Transaction{ID: c.TxID, Type: c.Type, MemberID: h.MemberID, Key: "capture:" + h.ID, Breakdown: string(bd),
		Actor: c.Actor, TraceID: c.TraceID, At: c.At, Postings: c.postings()}); err != nil {
		return err
	}
	if err := updateMember(ctx, tx, h.MemberID, `held = held - $2`, []any{h.Points}, memberSet(c.MemberSet, c.At)); err != nil {
		return err
	}
	if c.With != nil {
		return execWith(ctx, tx, *c.With)
	}
	return nil
}
