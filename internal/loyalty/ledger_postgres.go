package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// pgWrites books the ledger's writes on PostgreSQL, each as one statement of
// data-modifying CTEs: one round trip instead of four to seven. Parameters
// are cast explicitly: in INSERT … SELECT they would otherwise have no type.
type pgWrites struct{}

func (pgWrites) earn(ctx context.Context, tx *db.Tx, w *earnWrite, bd, stored string) error {
	r := w.res
	created := db.Micros(r.CreatedAt)
	args := []any{
		r.TransactionID, r.MemberID, "activity:" + w.source + ":" + r.ExternalID, bd, w.actor, r.TraceID, created, // 1–7
		MemberAccount(r.MemberID), r.TotalPointsEarned, w.ledgerAfter(), -r.TotalPointsEarned, // 8–11
		w.lotID, db.Micros(w.expiresAt), // 12–13
		w.source, r.ExternalID, r.ActivityType, db.Micros(r.OccurredAt), w.hash, stored, // 14–19
		r.NewBalance, w.statusPoints, r.CreatedAt.Year(), r.Tier, db.Micros(w.lastActivity), // 20–24
		w.lotPoints(), // 25
	}
	var b strings.Builder
	b.WriteString(pgEarnWrite)
	for i, p := range r.Promotions {
		if i == 0 {
			b.WriteString(`, w AS (INSERT INTO loyalty_promotion_awards (promotion_id, member_id, points, times) VALUES `)
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "($%d::text, $2::text, $%d::bigint, 1)", len(args)+1, len(args)+2)
		args = append(args, p.ID, p.Points)
	}
	if len(r.Promotions) > 0 {
		b.WriteString(` ON CONFLICT (promotion_id, member_id) DO UPDATE SET points = loyalty_promotion_awards.points + excluded.points, times = loyalty_promotion_awards.times + excluded.times)`)
	}
	b.WriteString(` SELECT 1`)
	_, err := tx.ExecContext(ctx, b.String(), args...)
	return err
}

// pgEarnWrite books an earning in one statement; pgWrites.earn appends the
// promotion awards.
const pgEarnWrite = `WITH t AS (
	INSERT INTO loyalty_transactions (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
	VALUES ($1::text, 'earn', $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint)
), p AS (
	INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at)
	VALUES ($1::text, $8::text, $9::bigint, $10::bigint, $7::bigint),
	       ($1::text, 'program:issuance', $11::bigint, NULL, $7::bigint)
), l AS (
	INSERT INTO loyalty_lots (id, member_id, transaction_id, points, remaining, earned_at, expires_at)
	SELECT $12::text, $2::text, $1::text, $25::bigint, $25::bigint, $7::bigint, $13::bigint WHERE $25::bigint > 0
), a AS (
	INSERT INTO loyalty_activities (source, external_id, member_id, type, occurred_at, request_hash, transaction_id, result, created_at)
	VALUES ($14::text, $15::text, $2::text, $16::text, $17::bigint, $18::text, $1::text, $19::text, $7::bigint)
), m AS (
	UPDATE loyalty_members SET balance = $20::bigint, status_points = $21::bigint, status_year = $22::integer,
		tier = $23::text, last_activity_at = $24::bigint, updated_at = $7::bigint,
		prev_status_points = CASE WHEN status_year < $22::integer THEN status_points ELSE prev_status_points END,
		prev_status_year = CASE WHEN status_year < $22::integer THEN status_year ELSE prev_status_year END
	WHERE id = $2::text
)`

// placeHold is one statement: the member row is locked from it to the
// commit, with no round trip in between.
func (pgWrites) placeHold(ctx context.Context, tx *db.Tx, p holdPlacement) (int64, bool, error) {
	args, guard := p.guardArgs()
	var b strings.Builder
	b.WriteString(`WITH m AS (
	UPDATE loyalty_members SET balance = balance - $3::bigint, held = held + $3::bigint, updated_at = $5::bigint
	WHERE id = $2::text AND balance >= 0 AND balance >= $3::bigint` + guard + `
	RETURNING balance
), h AS (
	INSERT INTO loyalty_holds (id, member_id, points, reference, status, created_at, expires_at, updated_at)
	SELECT $1::text, $2::text, $3::bigint, $4::text, 'pending', $5::bigint, $6::bigint, $5::bigint FROM m
)`)
	if r := p.redemption; r != nil {
		n := len(args)
		fmt.Fprintf(&b, `, r AS (
	INSERT INTO loyalty_redemptions (id, member_id, option_id, option_type, list_points, discount, cost,
		hold_id, reference, status, trace_id, created_at, updated_at)
	SELECT $%d::text, $2::text, $%d::text, $%d::text, $%d::bigint, $%d::bigint, $3::bigint, $1::text, $%d::text, 'pending', $%d::text, $5::bigint, $5::bigint FROM m
)`, n+1, n+2, n+3, n+4, n+5, n+6, n+7)
		args = append(args, r.id, r.optionID, r.optionType, r.listPoints, r.discount, r.reference, r.traceID)
	}
	b.WriteString(` SELECT balance FROM m`)
	var bal int64
	err := tx.QueryRowContext(ctx, b.String(), args...).Scan(&bal)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return bal, err == nil, err
}

// captureHold is one statement — lots consumed soonest-expiring first, the
// transaction and its postings, the hold, the member and the settled row —
// which reads the lots under the member's lock (it starts after the
// caller's lock statement).
func (pgWrites) captureHold(ctx context.Context, tx *db.Tx, c holdCapture) error {
	// The breakdown is Go's JSON on both engines: the lots the statement
	// picks are spliced in where encoding/json puts them.
	bd := c.breakdown
	noLots, err := json.Marshal(bd)
	if err != nil {
		return err
	}
	bd.Lots = []LotUse{{LotID: lotsMarker}}
	marked, err := json.Marshal(bd)
	if err != nil {
		return err
	}
	markerJSON, err := json.Marshal(bd.Lots)
	if err != nil {
		return err
	}
	prefix, suffix, ok := strings.Cut(string(marked), string(markerJSON))
	if !ok {
		return fmt.Errorf("ledger: breakdown %s lacks the lots marker", marked)
	}
	h, m := c.hold, c.member
	args := []any{h.ID, m.ID, h.Points, c.debit, c.txID, c.txType, "capture:" + h.ID, string(noLots), prefix, suffix, // 1–10
		actorOf(ctx), traceIDOf(ctx), db.Micros(c.now), MemberAccount(m.ID), c.ledgerAfter, c.creditAccount, -h.Points, c.lastActivity} // 11–18
	q := pgCaptureHold
	if c.settle != nil {
		q += fmt.Sprintf(`, s AS (
	UPDATE %s SET status = $19::text, confirmation = $20::text, transaction_id = $5::text, new_balance = $21::bigint, updated_at = $13::bigint
	WHERE id = $22::text AND EXISTS (SELECT 1 FROM h)
)`, c.settle.table)
		args = append(args, c.settle.status, c.settle.confirmation, m.Balance, c.settle.id)
	}
	q += ` SELECT (SELECT count(*) FROM h), (SELECT COALESCE(sum(take), 0)::bigint FROM uses)`
	var captured, taken int64
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&captured, &taken); err != nil {
		return err
	}
	if captured == 0 {
		return errHoldNotPending
	}
	if taken != c.debit {
		return fmt.Errorf("ledger: member %s lots hold %d points too few for a %d-point debit", m.ID, c.debit-taken, c.debit)
	}
	return nil
}

// lotsMarker stands for the lots in a breakdown until the capture statement
// has picked them.
const lotsMarker = "\x00lots\x00"

// pgCaptureHold is the capture's statement. h captures the hold if it is
// still pending; everything else happens only if it did. The lots are taken
// soonest-expiring first (ties by earning order, then id, as consumeLots):
// uses has each lot the debit $4 reaches and what it takes.
const pgCaptureHold = `WITH h AS (
	UPDATE loyalty_holds SET status = 'captured', transaction_id = $5::text, updated_at = $13::bigint
	WHERE id = $1::text AND member_id = $2::text AND status = 'pending'
	RETURNING id
), lots AS (
	SELECT id, remaining, (sum(remaining) OVER (ORDER BY expires_at, earned_at, id))::bigint AS upto
	FROM loyalty_lots WHERE member_id = $2::text AND remaining > 0
), uses AS (
	SELECT id, LEAST(remaining, $4::bigint - (upto - remaining)) AS take, upto
	FROM lots WHERE upto - remaining < $4::bigint AND EXISTS (SELECT 1 FROM h)
), l AS (
	UPDATE loyalty_lots SET remaining = loyalty_lots.remaining - uses.take FROM uses WHERE loyalty_lots.id = uses.id
), t AS (
	INSERT INTO loyalty_transactions (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
	SELECT $5::text, $6::text, $2::text, $7::text,
		COALESCE($9::text || (SELECT '[' || string_agg('{"lot_id":' || to_json(id)::text || ',"points":' || take || '}', ',' ORDER BY upto) || ']' FROM uses) || $10::text, $8::text),
		$11::text, $12::text, $13::bigint
	FROM h
), p AS (
	INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at)
	SELECT $5::text, $14::text, $17::bigint, $15::bigint, $13::bigint FROM h
	UNION ALL
	SELECT $5::text, $16::text, $3::bigint, NULL, $13::bigint FROM h
), m AS (
	UPDATE loyalty_members SET held = held - $3::bigint, last_activity_at = $18::bigint, updated_at = $18::bigint
	WHERE id = $2::text AND EXISTS (SELECT 1 FROM h)
)`
