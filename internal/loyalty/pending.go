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
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Pending points (issue 21).
//
// An earning whose activity type vests later (program.Vesting: purchases
// during their return window, hotel stays until check-out, flights until
// the flight date) books its points from program:issuance to the member's
// pending account, PendingAccount(member), not to the member's own account,
// and records them in loyalty_pending with the instant they vest. Pending
// points are in no balance the member can use: not spendable, not
// transferable, and their status points count towards tiers only when they
// vest (in the status year of the vesting).
//
// The vest job (VestBatch) moves due pending points to the member's account
// with a TxVest transaction, which forms the lot (expiring from the vesting,
// as any credit's), credits the status points and emits points.earned: an
// earning that pends announces itself when its points become the member's,
// and one cancelled while pending is never announced. A reversal of an
// earning still pending (a refund within the return window) cancels it:
// the points go back from the pending account to program:issuance and the
// member's balance is untouched, so it can never go negative. A reversal
// after vesting takes back the vested points as for any earning.
//
// The ledger stays balanced throughout: every transaction's postings sum to
// zero, and each member's pending account sums to its pending rows
// (pendingChecks).

// TxVest is the transaction that moves vested points from the member's
// pending account to the member's account.
const TxVest = "vest"

// PendingAccount is the ledger account of a member's pending points.
func PendingAccount(memberID string) string { return "pending:" + memberID }

// States of a loyalty_pending row.
const (
	pendingOpen      = "pending"
	pendingVested    = "vested"
	pendingCancelled = "cancelled"
)

// pendingEarning is a loyalty_pending row.
type pendingEarning struct {
	id, memberID, transactionID, activityType string
	points, statusPoints                      int64
	vestsAt                                   time.Time
	status                                    string
	settledTx                                 string
	settledAt                                 time.Time
}

// pendingOf reads the pending row of earning transactionID; nil when the
// earning did not pend.
func pendingOf(ctx context.Context, tx *db.Tx, transactionID string) (*pendingEarning, error) {
	var (
		p         pendingEarning
		vests     int64
		settledTx sql.NullString
		settledAt sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, `SELECT id, member_id, transaction_id, activity_type, points, status_points, vests_at, status,
		settled_transaction_id, settled_at FROM loyalty_pending WHERE transaction_id = $1`, transactionID).
		Scan(&p.id, &p.memberID, &p.transactionID, &p.activityType, &p.points, &p.statusPoints, &vests, &p.status, &settledTx, &settledAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pending earning: %w", err)
	}
	p.vestsAt, p.settledTx = db.FromMicros(vests), settledTx.String
	if settledAt.Valid {
		p.settledAt = db.FromMicros(settledAt.Int64)
	}
	return &p, nil
}

// execPending writes an earning whose points pend: the transaction from
// program:issuance to the member's pending account, its loyalty_pending
// row, the member's row (set: status year roll-over, last activity; the
// balance, status points and tier do not move) and the caller's writes.
func (w *earnWrite) execPending(ctx context.Context, tx *db.Tx, bd string, set ledger.Stmt, with []ledger.Stmt) error {
	r := w.res
	points := ledger.Points(r.PendingPoints)
	if err := ledger.Post(ctx, tx, ledger.Transaction{ID: r.TransactionID, Type: TxEarn, MemberID: r.MemberID,
		Key: "activity:" + w.source + ":" + r.ExternalID, Breakdown: bd, Actor: w.actor, TraceID: r.TraceID, At: r.CreatedAt,
		Postings: []ledger.Posting{ledger.To(PendingAccount(r.MemberID), points), ledger.To(AccountIssuance, -points)}}); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_pending (id, member_id, transaction_id, activity_type, points, status_points, vests_at, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)`,
		w.lotID, r.MemberID, r.TransactionID, r.ActivityType, r.PendingPoints, r.StatusPointsEarned, db.Micros(*r.VestsAt), db.Micros(r.CreatedAt)); err != nil {
		return err
	}
	args := append(append([]any{}, set.Args...), r.MemberID)
	if err := execStmt(ctx, tx, ledger.Stmt{SQL: `UPDATE loyalty_members SET ` + set.SQL + fmt.Sprintf(` WHERE id = $%d::text`, len(args)), Args: args}); err != nil {
		return err
	}
	for _, st := range with {
		if err := execStmt(ctx, tx, st); err != nil {
			return err
		}
	}
	return nil
}

// execStmt runs a statement written for PostgreSQL (parameters cast) on
// either engine.
func execStmt(ctx context.Context, tx *db.Tx, st ledger.Stmt) error {
	q := st.SQL
	if !tx.Dialect().WritableCTEs() {
		q = ledger.NoCasts(q)
	}
	_, err := tx.ExecContext(ctx, q, st.Args...)
	return err
}

// cancelPending reverses an earning whose points still pend (p, of member
// m, locked): the points go back from the pending account to
// program:issuance, the pending row is cancelled and the promotion awards
// are given back. The balance, status points and tier are untouched: none
// of them had counted the points. A cancelled one is replayed.
func (s *Service) cancelPending(ctx context.Context, tx *db.Tx, m Member, p pendingEarning, bdRaw, key, reason string, now time.Time) (ReversalResult, error) {
	if p.status == pendingCancelled {
		return priorCancel(ctx, tx, m, p)
	}
	var orig Breakdown
	if err := json.Unmarshal([]byte(bdRaw), &orig); err != nil {
		return ReversalResult{}, fmt.Errorf("decode earning breakdown: %w", err)
	}
	bd, err := json.Marshal(Breakdown{ReversedTransaction: p.transactionID, Reason: reason, ExternalID: orig.ExternalID, PendingCancelled: p.points})
	if err != nil {
		return ReversalResult{}, err
	}
	txID := newID()
	if err := ledger.Post(ctx, tx, ledger.Transaction{ID: txID, Type: TxReversal, MemberID: m.ID, Key: key, Breakdown: string(bd),
		Actor: actorOf(ctx), TraceID: traceIDOf(ctx), At: now,
		Postings: []ledger.Posting{ledger.To(PendingAccount(m.ID), -ledger.Points(p.points)), ledger.To(AccountIssuance, ledger.Points(p.points))}}); err != nil {
		return ReversalResult{}, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE loyalty_pending SET status = 'cancelled', settled_transaction_id = $2, settled_at = $3
		WHERE id = $1 AND status = 'pending'`, p.id, txID, db.Micros(now))
	if err != nil {
		return ReversalResult{}, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ReversalResult{}, fmt.Errorf("cancel pending %s: %d rows changed (%v)", p.id, n, err)
	}
	for _, pr := range orig.Promotions {
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_promotion_awards SET points = points - $3, times = times - 1
			WHERE promotion_id = $1 AND member_id = $2 AND times > 0`, pr.ID, m.ID, pr.Points); err != nil {
			return ReversalResult{}, err
		}
	}
	return ReversalResult{
		TransactionID: txID, ReversedTransactionID: p.transactionID, MemberID: m.ID, PendingPointsCancelled: p.points,
		NewBalance: m.Balance, Tier: m.Tier, Reason: reason, Actor: actorOf(ctx), TraceID: traceIDOf(ctx), CreatedAt: now,
	}, nil
}

// priorCancel is the replay of the cancellation of pending earning p.
func priorCancel(ctx context.Context, tx *db.Tx, m Member, p pendingEarning) (ReversalResult, error) {
	var bdRaw, actor, trace string
	var at int64
	if err := tx.QueryRowContext(ctx, `SELECT breakdown, actor, trace_id, created_at FROM loyalty_transactions WHERE id = $1`, p.settledTx).
		Scan(&bdRaw, &actor, &trace, &at); err != nil {
		return ReversalResult{}, fmt.Errorf("cancellation of pending %s: %w", p.id, err)
	}
	var bd Breakdown
	if err := json.Unmarshal([]byte(bdRaw), &bd); err != nil {
		return ReversalResult{}, fmt.Errorf("decode cancellation breakdown: %w", err)
	}
	return ReversalResult{
		TransactionID: p.settledTx, ReversedTransactionID: p.transactionID, MemberID: m.ID, PendingPointsCancelled: p.points,
		NewBalance: m.Balance, Tier: m.Tier, Reason: bd.Reason, Actor: actor, TraceID: trace, CreatedAt: db.FromMicros(at), Replayed: true,
	}, nil
}

// PendingLot is points of one earning waiting to vest.
type PendingLot struct {
	TransactionID string    `json:"transaction_id"`
	ActivityType  string    `json:"activity_type"`
	Points        int64     `json:"points"`
	StatusPoints  int64     `json:"status_points"`
	EarnedAt      time.Time `json:"earned_at"`
	VestsAt       time.Time `json:"vests_at"`
}

// pendingLots reads member id's pending points, soonest-vesting first.
func (s *Service) pendingLots(ctx context.Context, q ledger.Querier, memberID string) ([]PendingLot, error) {
	rows, err := q.QueryContext(ctx, `SELECT transaction_id, activity_type, points, status_points, created_at, vests_at FROM loyalty_pending
		WHERE member_id = $1 AND status = 'pending' ORDER BY vests_at, id`, memberID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lots := []PendingLot{}
	for rows.Next() {
		var l PendingLot
		var earned, vests int64
		if err := rows.Scan(&l.TransactionID, &l.ActivityType, &l.Points, &l.StatusPoints, &earned, &vests); err != nil {
			return nil, err
		}
		l.EarnedAt, l.VestsAt = db.FromMicros(earned), db.FromMicros(vests)
		lots = append(lots, l)
	}
	return lots, rows.Err()
}

// PendingPoints returns the member's points waiting to vest, in total.
func (s *Service) PendingPoints(ctx context.Context, memberID string) (int64, error) {
	var n int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(SUM(points), 0) FROM loyalty_pending WHERE member_id = $1 AND status = 'pending'`,
		memberID).Scan(&n)
	if err != nil {
		return 0, internal("pending points", err)
	}
	return n, nil
}

// orderIDOf is the shop order of a purchase's external id ("order:<id>").
func orderIDOf(activityType, externalID string) string {
	if activityType != program.ActivityPurchase {
		return ""
	}
	id, _ := strings.CutPrefix(externalID, "order:")
	return id
}

// vestEvents are the events of a vesting: points.earned for the earning,
// and tier.changed when its status points upgraded the member.
func (s *Service) vestEvents(ctx context.Context, m Member, p pendingEarning, orig Breakdown, balance int64, tier string, statusPoints int64, now time.Time) ([]events.Event, error) {
	evs, err := s.event(ctx, events.PointsEarned, m.ID, now, events.PointsEarnedData{
		MemberID: m.ID, TransactionID: p.transactionID, ActivityType: p.activityType, ExternalID: orig.ExternalID,
		OrderID: orderIDOf(p.activityType, orig.ExternalID), Points: p.points, BasePoints: orig.BasePoints, TierBonus: orig.TierBonus,
		PromoBonus: orig.PromoBonus, StatusPoints: p.statusPoints, Balance: balance, Tier: tier,
	})
	if err != nil {
		return nil, err
	}
	tc, err := s.tierChange(ctx, m.ID, m.Tier, tier, events.ReasonQualified, statusPoints, now)
	return append(evs, tc...), err
}

// pendingChecks are the invariants of pending points, run by Verify:
//
//   - each member's pending account sums to the points of its pending rows;
//   - each pending earning posted exactly its points to the pending account,
//     and each vested or cancelled one was settled by a transaction that took
//     exactly those points out of it (a vest also put them on the member's
//     account); a pending one is not settled.
var pendingChecks = []ledger.Check{
	{Query: `SELECT id, posted, pending FROM (
			SELECT m.id,
				COALESCE((SELECT SUM(p.amount) FROM loyalty_postings p WHERE p.account = 'pending:' || m.id), 0) AS posted,
				COALESCE((SELECT SUM(d.points) FROM loyalty_pending d WHERE d.member_id = m.id AND d.status = 'pending'), 0) AS pending
			FROM loyalty_members m) x
		WHERE posted <> pending`,
		Format: func(v []string) string {
			return fmt.Sprintf("member %s: pending account holds %s but %s points are pending", v[0], v[1], v[2])
		}},
	{Query: `SELECT d.id, d.status, COALESCE(e.amount, 0), COALESCE(-s.amount, 0), COALESCE(v.amount, 0) FROM loyalty_pending d
			LEFT JOIN loyalty_postings e ON e.transaction_id = d.transaction_id AND e.account = 'pending:' || d.member_id
			LEFT JOIN loyalty_postings s ON s.transaction_id = d.settled_transaction_id AND s.account = 'pending:' || d.member_id
			LEFT JOIN loyalty_postings v ON v.transaction_id = d.settled_transaction_id AND v.account = 'member:' || d.member_id
			WHERE COALESCE(e.amount, 0) <> d.points
				OR (d.status = 'pending' AND d.settled_transaction_id IS NOT NULL)
				OR (d.status <> 'pending' AND COALESCE(-s.amount, 0) <> d.points)
				OR (d.status = 'vested' AND COALESCE(v.amount, 0) <> d.points)`,
		Format: func(v []string) string {
			return fmt.Sprintf("pending earning %s (%s): earned %s into the pending account, settled %s out of it, vested %s", v[0], v[1], v[2], v[3], v[4])
		}},
}

// eventDate parses an activity's optional date (YYYY-MM-DD) for field.
func eventDate(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, errs.Coded(errs.Unprocessable, "invalid_activity", "%s must be a date such as 2026-03-01", field).With("field", field)
	}
	return t, nil
}
