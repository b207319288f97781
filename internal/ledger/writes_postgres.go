package ledger

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

// withCTEs appends the caller's writes to b as CTEs named w0, w1, …, their
// parameters after args, with done for $done; it returns the arguments.
func withCTEs(b *strings.Builder, args []any, done string, with ...Stmt) []any {
	for i, w := range with {
		fmt.Fprintf(b, ", w%d AS (%s)", i, w.at(len(args), done))
		args = append(args, w.Args...)
	}
	return args
}

func (pgWrites) credit(ctx context.Context, tx *db.Tx, c Credit) error {
	at := db.Micros(c.At)
	args := []any{
		c.ID, c.Type, c.MemberID, nullable(c.Key), c.Breakdown, c.Actor, c.TraceID, at, // 1–8
		MemberAccount(c.MemberID), c.Points, c.ledgerAfter(), c.From, -c.Points, // 9–13
		c.LotID, c.lotPoints(), db.Micros(c.LotExpires), // 14–16
	}
	set := memberSet(c.MemberSet, c.At)
	var b strings.Builder
	b.WriteString(`WITH t AS (
	INSERT INTO loyalty_transactions (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
	VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint)
), p AS (
	INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at)
	VALUES ($1::text, $9::text, $10::bigint, $11::bigint, $8::bigint),
	       ($1::text, $12::text, $13::bigint, NULL, $8::bigint)
), l AS (
	INSERT INTO loyalty_lots (id, member_id, transaction_id, points, remaining, earned_at, expires_at)
	SELECT $14::text, $3::text, $1::text, $15::bigint, $15::bigint, $8::bigint, $16::bigint WHERE $15::bigint > 0
), m AS (
	UPDATE loyalty_members SET balance = balance + $10::bigint, ` + set.at(len(args), "") + ` WHERE id = $3::text
)`)
	args = append(args, set.Args...)
	args = withCTEs(&b, args, "TRUE", c.With...)
	b.WriteString(` SELECT 1`)
	_, err := tx.ExecContext(ctx, b.String(), args...)
	return err
}

// placeHold is one statement: the member row is locked from it to the
// commit, with no round trip in between.
func (pgWrites) placeHold(ctx context.Context, tx *db.Tx, p Placement) (Points, bool, error) {
	args, guard := p.args()
	var b strings.Builder
	b.WriteString(`WITH m AS (
	UPDATE loyalty_members SET balance = balance - $3::bigint, held = held + $3::bigint, updated_at = $5::bigint
	WHERE id = $2::text AND balance >= 0 AND balance >= $3::bigint` + guard + `
	RETURNING balance
), h AS (
	INSERT INTO loyalty_holds (id, member_id, points, reference, status, created_at, expires_at, updated_at)
	SELECT $1::text, $2::text, $3::bigint, $4::text, 'pending', $5::bigint, $6::bigint, $5::bigint FROM m
)`)
	if p.With != nil {
		args = withCTEs(&b, args, "EXISTS (SELECT 1 FROM m)", *p.With)
	}
	b.WriteString(` SELECT balance FROM m`)
	var bal Points
	err := tx.QueryRowContext(ctx, b.String(), args...).Scan(&bal)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return bal, err == nil, err
}

// captureHold is one statement — lots consumed soonest-expiring first, the
// transaction and its postings, the hold, the member and the caller's write
// — which reads the lots under the member's lock (it starts after the
// caller's lock statement).
func (pgWrites) captureHold(ctx context.Context, tx *db.Tx, c Capture, debit Points) error {
	// The breakdown is the caller's JSON on both engines: the lots the
	// statement picks are spliced in where the caller put the marker.
	noLots, err := c.Describe(nil)
	if err != nil {
		return err
	}
	marker := []LotUse{{LotID: lotsMarker}}
	marked, err := c.Describe(marker)
	if err != nil {
		return err
	}
	markerJSON, err := json.Marshal(marker)
	if err != nil {
		return err
	}
	prefix, suffix, ok := strings.Cut(string(marked), string(markerJSON))
	if !ok {
		return fmt.Errorf("ledger: breakdown %s lacks the lots marker", marked)
	}
	h, ps := c.Hold, c.postings()
	args := []any{h.ID, h.MemberID, h.Points, debit, c.TxID, c.Type, "capture:" + h.ID, string(noLots), prefix, suffix, // 1–10
		c.Actor, c.TraceID, db.Micros(c.At), ps[0].Account, *ps[0].BalanceAfter, ps[1].Account, ps[0].Amount} // 11–17
	set := memberSet(c.MemberSet, c.At)
	var b strings.Builder
	b.WriteString(pgCaptureHold)
	fmt.Fprintf(&b, `, m AS (
	UPDATE loyalty_members SET held = held - $3::bigint, %s
	WHERE id = $2::text AND EXISTS (SELECT 1 FROM h)
)`, set.at(len(args), ""))
	args = append(args, set.Args...)
	if c.With != nil {
		args = withCTEs(&b, args, "EXISTS (SELECT 1 FROM h)", *c.With)
	}
	b.WriteString(` SELECT (SELECT count(*) FROM h), (SELECT COALESCE(sum(take), 0)::bigint FROM uses)`)
	var captured, taken Points
	if err := tx.QueryRowContext(ctx, b.String(), args...).Scan(&captured, &taken); err != nil {
		return err
	}
	if captured == 0 {
		return ErrHoldNotPending
	}
	if taken != debit {
		return fmt.Errorf("ledger: member %s lots hold %d points too few for a %d-point debit", h.MemberID, debit-taken, debit)
	}
	return nil
}

// lotsMarker stands for the lots in a breakdown until the capture statement
// has picked them.
const lotsMarker = "\x00lots\x00"

// pgCaptureHold is the capture's statement but for the member's update. h
// captures the hold if it is still pending; everything else happens only if
// it did. The lots are taken soonest-expiring first (ties by earning order,
// then id, as ConsumeLots): uses has each lot the debit $4 reaches and what
// it takes.
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
)`
