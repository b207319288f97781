package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// sqliteWrites books the ledger's writes on SQLite as sequences of plain
// statements: SQLite has no data-modifying CTEs, and its statements are
// in-process calls with no round trip to save. The write transaction holds
// the database's one write lock, so nothing can change between them.
type sqliteWrites struct{}

func (sqliteWrites) earn(ctx context.Context, tx *db.Tx, w *earnWrite, bd, stored string) error {
	r := w.res
	created := db.Micros(r.CreatedAt)
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_transactions (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
		VALUES ($1, 'earn', $2, $3, $4, $5, $6, $7)`,
		r.TransactionID, r.MemberID, "activity:"+w.source+":"+r.ExternalID, bd, w.actor, r.TraceID, created); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at)
		VALUES ($1, $2, $3, $4, $5), ($1, 'program:issuance', $6, NULL, $5)`,
		r.TransactionID, MemberAccount(r.MemberID), r.TotalPointsEarned, w.ledgerAfter(), created, -r.TotalPointsEarned); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_activities (source, external_id, member_id, type, occurred_at, request_hash, transaction_id, result, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		w.source, r.ExternalID, r.MemberID, r.ActivityType, db.Micros(r.OccurredAt), w.hash, r.TransactionID, stored, created); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = $2, status_points = $3, status_year = $4, tier = $5, last_activity_at = $6, updated_at = $7,
		prev_status_points = CASE WHEN status_year < $4 THEN status_points ELSE prev_status_points END,
		prev_status_year = CASE WHEN status_year < $4 THEN status_year ELSE prev_status_year END
		WHERE id = $1`,
		r.MemberID, r.NewBalance, w.statusPoints, r.CreatedAt.Year(), r.Tier, db.Micros(w.lastActivity), created); err != nil {
		return err
	}
	if lot := w.lotPoints(); lot > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_lots (id, member_id, transaction_id, points, remaining, earned_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5, $6)`,
			w.lotID, r.MemberID, r.TransactionID, lot, created, db.Micros(w.expiresAt)); err != nil {
			return err
		}
	}
	for _, p := range r.Promotions {
		if _, err := tx.ExecContext(ctx, upsertAward, p.ID, r.MemberID, p.Points); err != nil {
			return err
		}
	}
	return nil
}

const upsertAward = `INSERT INTO loyalty_promotion_awards (promotion_id, member_id, points, times) VALUES ($1, $2, $3, 1)
	ON CONFLICT (promotion_id, member_id) DO UPDATE SET points = loyalty_promotion_awards.points + excluded.points, times = loyalty_promotion_awards.times + 1`

func (sqliteWrites) placeHold(ctx context.Context, tx *db.Tx, p holdPlacement) (int64, bool, error) {
	args, guard := p.guardArgs()
	var bal int64
	err := tx.QueryRowContext(ctx, `UPDATE loyalty_members SET balance = balance - $3, held = held + $3, updated_at = $5
		WHERE id = $2 AND balance >= 0 AND balance >= $3`+strings.NewReplacer("::text", "", "::bigint", "").Replace(guard)+`
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
	if r := p.redemption; r != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_redemptions (id, member_id, option_id, option_type, list_points, discount, cost,
			hold_id, reference, status, trace_id, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)`,
			r.id, p.memberID, r.optionID, r.optionType, r.listPoints, r.discount, p.points, p.holdID, r.reference, r.traceID, db.Micros(p.now)); err != nil {
			return 0, false, err
		}
	}
	return bal, true, nil
}

func (sqliteWrites) captureHold(ctx context.Context, tx *db.Tx, c holdCapture) error {
	h, m := c.hold, c.member
	res, err := tx.ExecContext(ctx, `UPDATE loyalty_holds SET status = 'captured', transaction_id = $2, updated_at = $3 WHERE id = $1 AND status = 'pending'`,
		h.ID, c.txID, db.Micros(c.now))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errHoldNotPending
	}
	lots, err := consumeLots(ctx, tx, m.ID, c.debit, "")
	if err != nil {
		return err
	}
	bd := c.breakdown
	bd.Lots = lots
	raw, err := json.Marshal(bd)
	if err != nil {
		return err
	}
	ledgerAfter := c.ledgerAfter
	if err := insertTransaction(ctx, tx, c.txID, c.txType, m.ID, "capture:"+h.ID, string(raw), actorOf(ctx), traceIDOf(ctx), c.now,
		posting{MemberAccount(m.ID), -h.Points, &ledgerAfter}, posting{c.creditAccount, h.Points, nil}); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET held = held - $2, last_activity_at = $3, updated_at = $3 WHERE id = $1`,
		m.ID, h.Points, c.lastActivity); err != nil {
		return err
	}
	if s := c.settle; s != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE `+s.table+` SET status = $2, confirmation = $3, transaction_id = $4,
			new_balance = $5, updated_at = $6 WHERE id = $1`, s.id, s.status, s.confirmation, c.txID, m.Balance, db.Micros(c.now)); err != nil {
			return err
		}
	}
	return nil
}
