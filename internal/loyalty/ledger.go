package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
//
// On PostgreSQL it is one statement of data-modifying CTEs: the member row is
// locked from this statement to the commit, with no round trip in between.
// SQLite runs the statements one by one.
func placeHold(ctx context.Context, tx *db.Tx, p holdPlacement) (int64, bool, error) {
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
	r := p.redemption
	var bal int64
	if tx.Engine() == db.Postgres {
		var b strings.Builder
		b.WriteString(`WITH m AS (
	UPDATE loyalty_members SET balance = balance - $3::bigint, held = held + $3::bigint, updated_at = $5::bigint
	WHERE id = $2::text AND balance >= 0 AND balance >= $3::bigint` + guard + `
	RETURNING balance
), h AS (
	INSERT INTO loyalty_holds (id, member_id, points, reference, status, created_at, expires_at, updated_at)
	SELECT $1::text, $2::text, $3::bigint, $4::text, 'pending', $5::bigint, $6::bigint, $5::bigint FROM m
)`)
		if r != nil {
			n := len(args)
			fmt.Fprintf(&b, `, r AS (
	INSERT INTO loyalty_redemptions (id, member_id, option_id, option_type, list_points, discount, cost,
		hold_id, reference, status, trace_id, created_at, updated_at)
	SELECT $%d::text, $2::text, $%d::text, $%d::text, $%d::bigint, $%d::bigint, $3::bigint, $1::text, $%d::text, 'pending', $%d::text, $5::bigint, $5::bigint FROM m
)`, n+1, n+2, n+3, n+4, n+5, n+6, n+7)
			args = append(args, r.id, r.optionID, r.optionType, r.listPoints, r.discount, r.reference, r.traceID)
		}
		b.WriteString(` SELECT balance FROM m`)
		err := tx.QueryRowContext(ctx, b.String(), args...).Scan(&bal)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return bal, err == nil, err
	}
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
	if r != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_redemptions (id, member_id, option_id, option_type, list_points, discount, cost,
			hold_id, reference, status, trace_id, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)`,
			r.id, p.memberID, r.optionID, r.optionType, r.listPoints, r.discount, p.points, p.holdID, r.reference, r.traceID, db.Micros(p.now)); err != nil {
			return 0, false, err
		}
	}
	return bal, true, nil
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
// type txType, and the member's lots are consumed. bd is completed with the
// hold and the lots. settle, if not nil, is marked settled too. It returns
// the transaction id and the member's spendable balance afterwards, or
// errHoldNotPending, having written nothing, when the hold is not pending:
// h's ID, MemberID, Points and Reference must be right, its Status need not
// be current.
//
// On PostgreSQL the whole capture — lots consumed soonest-expiring first,
// the transaction and its postings, the hold, the member and the settled row
// — is one statement of data-modifying CTEs, which reads the lots under the
// member's lock (it starts after the caller's lock statement); SQLite runs
// the statements one by one.
func captureHoldTx(ctx context.Context, tx *db.Tx, h Hold, m Member, txType, creditAccount string, bd Breakdown, now time.Time, settle *settleRow) (string, int64, error) {
	ledger := m.Balance + m.Pending
	debit := lotDebit(ledger, h.Points)
	ledgerAfter := ledger - h.Points
	last := db.Micros(laterOf(m.LastActivityAt, now))
	txID := newID()
	bd.HoldID, bd.Reference = h.ID, h.Reference
	if tx.Engine() == db.Postgres {
		// The breakdown is Go's JSON on both engines: the lots the statement
		// picks are spliced in where encoding/json puts them.
		noLots, err := json.Marshal(bd)
		if err != nil {
			return "", 0, err
		}
		bd.Lots = []LotUse{{LotID: lotsMarker}}
		marked, err := json.Marshal(bd)
		if err != nil {
			return "", 0, err
		}
		markerJSON, err := json.Marshal(bd.Lots)
		if err != nil {
			return "", 0, err
		}
		prefix, suffix, ok := strings.Cut(string(marked), string(markerJSON))
		if !ok {
			return "", 0, fmt.Errorf("ledger: breakdown %s lacks the lots marker", marked)
		}
		args := []any{h.ID, m.ID, h.Points, debit, txID, txType, "capture:" + h.ID, string(noLots), prefix, suffix, // 1–10
			actorOf(ctx), traceIDOf(ctx), db.Micros(now), MemberAccount(m.ID), ledgerAfter, creditAccount, -h.Points, last} // 11–18
		q := pgCaptureHold
		if settle != nil {
			q += fmt.Sprintf(`, s AS (
	UPDATE %s SET status = $19::text, confirmation = $20::text, transaction_id = $5::text, new_balance = $21::bigint, updated_at = $13::bigint
	WHERE id = $22::text AND EXISTS (SELECT 1 FROM h)
)`, settle.table)
			args = append(args, settle.status, settle.confirmation, m.Balance, settle.id)
		}
		q += ` SELECT (SELECT count(*) FROM h), (SELECT COALESCE(sum(take), 0)::bigint FROM uses)`
		var captured, taken int64
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&captured, &taken); err != nil {
			return "", 0, err
		}
		if captured == 0 {
			return "", 0, errHoldNotPending
		}
		if taken != debit {
			return "", 0, fmt.Errorf("ledger: member %s lots hold %d points too few for a %d-point debit", m.ID, debit-taken, debit)
		}
		return txID, m.Balance, nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE loyalty_holds SET status = 'captured', transaction_id = $2, updated_at = $3 WHERE id = $1 AND status = 'pending'`,
		h.ID, txID, db.Micros(now))
	if err != nil {
		return "", 0, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", 0, err
	} else if n == 0 {
		return "", 0, errHoldNotPending
	}
	lots, err := consumeLots(ctx, tx, m.ID, debit, "")
	if err != nil {
		return "", 0, err
	}
	bd.Lots = lots
	raw, err := json.Marshal(bd)
	if err != nil {
		return "", 0, err
	}
	if err := insertTransaction(ctx, tx, txID, txType, m.ID, "capture:"+h.ID, string(raw), actorOf(ctx), traceIDOf(ctx), now,
		posting{MemberAccount(m.ID), -h.Points, &ledgerAfter}, posting{creditAccount, h.Points, nil}); err != nil {
		return "", 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET held = held - $2, last_activity_at = $3, updated_at = $3 WHERE id = $1`,
		m.ID, h.Points, last); err != nil {
		return "", 0, err
	}
	if settle != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE `+settle.table+` SET status = $2, confirmation = $3, transaction_id = $4,
			new_balance = $5, updated_at = $6 WHERE id = $1`, settle.id, settle.status, settle.confirmation, txID, m.Balance, db.Micros(now)); err != nil {
			return "", 0, err
		}
	}
	return txID, m.Balance, nil
}

// lotsMarker stands for the lots in a breakdown until the capture statement
// has picked them.
const lotsMarker = "\x00lots\x00"

// pgCaptureHold is captureHoldTx's statement on PostgreSQL. h captures the
// hold if it is still pending; everything else happens only if it did. The
// lots are taken soonest-expiring first (ties by earning order, then id, as
// consumeLots): uses has each lot the debit $4 reaches and what it takes.
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
