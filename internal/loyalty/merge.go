package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TxMerge is the type of the ledger transaction that moves a merged
// member's points to the member it was merged into.
const TxMerge = "merge"

// Codes of the merge errors, compared by callers (errs.Is).
const (
	// CodeMemberMerged (Gone) answers every route of a merged member; the
	// problem carries merged_into.
	CodeMemberMerged = "member_merged"
	// CodeMemberHasOpenHolds (Conflict): a member with pending holds is not
	// merged; its holds are captured or voided first.
	CodeMemberHasOpenHolds = "member_has_open_holds"
	// CodeMemberHasPendingPoints (Conflict): a member whose earnings still
	// pend is merged after they vest.
	CodeMemberHasPendingPoints = "member_has_pending_points"
)

// memberMerged is the answer about member id, merged into into.
func memberMerged(id, into string) error {
	return errs.Coded(errs.Gone, CodeMemberMerged, "member %q was merged into member %q", id, into).
		With("member_id", id).With("merged_into", into)
}

// MovedLot is one lot a merge moved: the merged member's lot (FromLotID)
// gave Points to a new lot of the surviving member (LotID, empty when the
// points repaid the survivor's debt instead) that keeps its expiry.
type MovedLot struct {
	FromLotID string    `json:"from_lot_id"`
	LotID     string    `json:"lot_id,omitempty"`
	Points    int64     `json:"points"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MergeResult is the outcome of a merge, and the audit record's details.
type MergeResult struct {
	MemberID   string `json:"member_id"`
	MergedInto string `json:"merged_into"`
	// TransactionID is the merge's ledger transaction: member → survivor.
	TransactionID string `json:"transaction_id"`
	// Points is the merged member's ledger balance that moved (negative: a
	// debt the survivor took over).
	Points int64      `json:"points"`
	Lots   []MovedLot `json:"lots"`
	// StatusPoints of the current status year, and PrevStatusPoints of the
	// previous one, added to the survivor's.
	StatusPoints     int64     `json:"status_points"`
	PrevStatusPoints int64     `json:"prev_status_points"`
	NewBalance       int64     `json:"new_balance"`
	Tier             string    `json:"tier"`
	Reason           string    `json:"reason"`
	AuditID          string    `json:"audit_id"`
	Actor            string    `json:"actor"`
	TraceID          string    `json:"trace_id"`
	CreatedAt        time.Time `json:"created_at"`
}

// mergeRow is a member's row as a merge reads and writes it: the merge must
// see a merged or erased member, which scanMember refuses.
type mergeRow struct {
	id, tier, mergedInto                    string
	balance, held, status, prevStatus       int64
	statusYear, prevStatusYear, requalified int
	erasedAt                                int64
	lastActivity                            sql.NullInt64
}

func lockMergeRow(ctx context.Context, tx *db.Tx, id string) (mergeRow, error) {
	var r mergeRow
	err := tx.QueryRowContext(ctx, `SELECT id, tier, merged_into, balance, held, status_points, prev_status_points,
		status_year, prev_status_year, requalified_year, erased_at, last_activity_at
		FROM loyalty_members WHERE id = $1`+tx.ForUpdate(), id).
		Scan(&r.id, &r.tier, &r.mergedInto, &r.balance, &r.held, &r.status, &r.prevStatus,
			&r.statusYear, &r.prevStatusYear, &r.requalified, &r.erasedAt, &r.lastActivity)
	if errors.Is(err, sql.ErrNoRows) {
		return r, memberNotFound(id)
	}
	return r, err
}

// rollTo starts status year y as earning does: the old year's points
// become the previous year's.
func (r *mergeRow) rollTo(y int) {
	if r.statusYear < y {
		r.prevStatus, r.prevStatusYear = r.status, r.statusYear
		r.status, r.statusYear = 0, y
	}
}

// MergeMember merges duplicate member fromID into member intoID, in one
// transaction holding both members' row locks (taken in id order, as
// member-to-member transfers take them):
//
//   - the duplicate's ledger balance moves by one TxMerge transaction
//     (member:from → member:into, both legs on the member accounts); its
//     lots move to new lots of the survivor with the same expiry and earning
//     time (a survivor's debt is repaid first, from the soonest-expiring);
//   - its status points of the current and previous status year are added
//     to the survivor's, which takes the highest of both tiers and the tier
//     its combined status points reach;
//   - the duplicate keeps its row (the ledger names it) with merged_into
//     set: from then on every read of it is errs Gone CodeMemberMerged with
//     the pointer, so it earns, spends and merges no more;
//   - an audit record says who merged whom, when, and what moved.
//
// A duplicate with pending holds is errs Conflict CodeMemberHasOpenHolds
// (moving a hold would move its redemption or checkout too). An earning
// racing the merge either commits first (its points move) or waits for the
// lock and finds the member merged (410).
func (s *Service) MergeMember(ctx context.Context, fromID, intoID, reason string) (res MergeResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.merge_members", trace.WithAttributes(
		attribute.String("loyalty.member_id", fromID),
		attribute.String("loyalty.merged_into", intoID),
		attribute.String("loyalty.transaction_type", TxMerge),
	))
	defer func() { endWithResult(span, "loyalty.result", "merged", false, err) }()
	if reason, err = validateReason(reason); err != nil {
		return MergeResult{}, err
	}
	if intoID == "" {
		return MergeResult{}, errs.Coded(errs.Unprocessable, "missing_into", "into (the id of the member to merge into) is required").With("field", "into")
	}
	if intoID == fromID {
		return MergeResult{}, errs.Coded(errs.Unprocessable, "invalid_merge", "a member cannot be merged into itself").With("field", "into")
	}
	now := s.now().UTC()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err = s.mergeTx(ctx, tx, fromID, intoID, reason, now)
		return err
	})
	if err != nil {
		return MergeResult{}, internal("merge members", err)
	}
	span.SetAttributes(
		attribute.String("loyalty.transaction_id", res.TransactionID),
		attribute.Int64("loyalty.points", res.Points),
		attribute.Int64("loyalty.lots_moved", int64(len(res.Lots))),
		attribute.Int64("loyalty.status_points", res.StatusPoints),
		attribute.Int64("loyalty.new_balance", res.NewBalance),
		attribute.String("loyalty.tier", res.Tier),
	)
	return res, nil
}

// lockMergePair locks both members in id order (as member-to-member
// transfers do, so neither deadlocks) and refuses a merge that cannot be
// made.
func lockMergePair(ctx context.Context, tx *db.Tx, fromID, intoID string) (from, into mergeRow, err error) {
	first, second := fromID, intoID
	if second < first {
		first, second = second, first
	}
	a, err := lockMergeRow(ctx, tx, first)
	if err != nil {
		return from, into, err
	}
	b, err := lockMergeRow(ctx, tx, second)
	if err != nil {
		return from, into, err
	}
	from, into = a, b
	if first != fromID {
		from, into = b, a
	}
	switch {
	case from.mergedInto != "":
		return from, into, memberMerged(from.id, from.mergedInto)
	case into.mergedInto != "":
		return from, into, errs.Coded(errs.Conflict, "merge_target_merged",
			"member %q was itself merged into member %q; merge into that one", into.id, into.mergedInto).
			With("field", "into").With("merged_into", into.mergedInto)
	case into.erasedAt != 0:
		return from, into, errs.Coded(errs.Conflict, "merge_target_erased",
			"member %q has had its personal data erased and takes no merges", into.id).With("field", "into")
	case from.held != 0:
		return from, into, errs.Coded(errs.Conflict, CodeMemberHasOpenHolds,
			"member %q has %d points in pending holds; capture or void them before merging", from.id, from.held).
			With("held", from.held)
	}
	// Pending points stay with the earning that may still be refunded
	// (a refund cancels them from the duplicate's pending account), so a
	// duplicate waits until they vest. The vest job takes the member's row
	// lock, held here, so the count cannot change under the merge.
	var pending int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(points), 0) FROM loyalty_pending WHERE member_id = $1 AND status = 'pending'`,
		from.id).Scan(&pending); err != nil {
		return from, into, fmt.Errorf("pending points of %s: %w", from.id, err)
	}
	if pending != 0 {
		return from, into, errs.Coded(errs.Conflict, CodeMemberHasPendingPoints,
			"member %q has %d pending points; merge it after they vest", from.id, pending).With("pending", pending)
	}
	return from, into, nil
}

func (s *Service) mergeTx(ctx context.Context, tx *db.Tx, fromID, intoID, reason string, now time.Time) (MergeResult, error) {
	from, into, err := lockMergePair(ctx, tx, fromID, intoID)
	if err != nil {
		return MergeResult{}, err
	}
	y := now.Year()
	from.rollTo(y)
	into.rollTo(y)

	res := MergeResult{MemberID: from.id, MergedInto: into.id, Reason: reason, AuditID: newID(),
		Actor: actorOf(ctx), TraceID: traceIDOf(ctx), CreatedAt: now, Lots: []MovedLot{}}
	res.TransactionID = newID()
	amount := from.balance // held is zero: the ledger balance is the balance
	res.Points = amount
	intoLedger := into.balance + into.held
	// Status points: the current year's always add up; the previous year's
	// when both count in the same year, or when the survivor has none.
	res.StatusPoints = from.status
	into.status += from.status
	if from.prevStatus != 0 && (from.prevStatusYear == into.prevStatusYear || into.prevStatus == 0) {
		res.PrevStatusPoints = from.prevStatus
		into.prevStatus += from.prevStatus
		into.prevStatusYear = from.prevStatusYear
	}
	oldTier := into.tier
	into.tier = s.highestTier(into.tier, from.tier, s.prog.TierFor(into.status).ID)
	res.Tier = into.tier
	res.NewBalance = into.balance + amount

	bd, err := json.Marshal(Breakdown{FromMemberID: from.id, ToMemberID: into.id, StatusPoints: from.status, Reason: reason})
	if err != nil {
		return MergeResult{}, err
	}
	t := ledger.Transaction{ID: res.TransactionID, Type: TxMerge, MemberID: from.id, Breakdown: string(bd),
		Actor: res.Actor, TraceID: res.TraceID, At: now}
	if amount != 0 {
		t.Postings = []ledger.Posting{
			ledger.Member(from.id, ledger.Points(-amount), 0),
			ledger.Member(into.id, ledger.Points(amount), ledger.Points(intoLedger+amount)),
		}
	}
	if err := ledger.Post(ctx, tx, t); err != nil {
		return MergeResult{}, err
	}
	// The lots after the transaction: the new ones name it.
	switch {
	case amount > 0:
		if res.Lots, err = moveLots(ctx, tx, from.id, into.id, res.TransactionID, amount,
			int64(ledger.LotCredit(ledger.Points(intoLedger), ledger.Points(amount)))); err != nil {
			return MergeResult{}, err
		}
	case amount < 0:
		// The survivor takes over the debt: its lots give up what its
		// balance can cover, as any debit's do.
		uses, err := ledger.ConsumeLots(ctx, tx, into.id, ledger.LotDebit(ledger.Points(intoLedger), ledger.Points(-amount)), "")
		if err != nil {
			return MergeResult{}, err
		}
		for _, u := range uses {
			res.Lots = append(res.Lots, MovedLot{FromLotID: u.LotID, Points: -u.Points})
		}
	}

	at := db.Micros(now)
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = 0, status_points = 0, prev_status_points = 0,
		status_year = $2, merged_into = $3, merged_at = $4, updated_at = $4 WHERE id = $1`, from.id, y, into.id, at); err != nil {
		return MergeResult{}, err
	}
	// The survivor's last activity moves to the later of both: the
	// inactivity expiry policy must not expire merged points sooner than the
	// duplicate's own activity allowed.
	last := into.lastActivity
	if from.lastActivity.Valid && (!last.Valid || from.lastActivity.Int64 > last.Int64) {
		last = from.lastActivity
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, tier = $3, status_points = $4, status_year = $5,
		prev_status_points = $6, prev_status_year = $7, last_activity_at = $8, updated_at = $9 WHERE id = $1`,
		into.id, amount, into.tier, into.status, into.statusYear, into.prevStatus, into.prevStatusYear, last, at); err != nil {
		return MergeResult{}, err
	}
	details, err := json.Marshal(res)
	if err != nil {
		return MergeResult{}, err
	}
	if err := insertAudit(ctx, tx, res.AuditID, from.id, "merge", res.Actor, res.TraceID, string(details), now); err != nil {
		return MergeResult{}, err
	}
	evs, err := s.tierChange(ctx, into.id, oldTier, into.tier, events.ReasonMerge, into.status, now)
	if err != nil {
		return MergeResult{}, err
	}
	return res, s.emit(ctx, tx, evs...)
}

// highestTier is the highest ranked of the tiers the program knows among ids
// (a tier no longer in the program is passed over; the first id if none is known).
func (s *Service) highestTier(ids ...string) string {
	best, rank := ids[0], -1
	for _, id := range ids {
		if t, ok := s.prog.Tier(id); ok && t.Rank > rank {
			best, rank = t.ID, t.Rank
		}
	}
	return best
}

// moveLots empties fromID's lots (soonest-expiring first, as a debit takes
// them) and gives intoID new lots of the same expiry and earning time,
// formed by transaction txID. Of amount, only form points form lots: the
// rest repays intoID's debt and is taken from the soonest-expiring lots.
func moveLots(ctx context.Context, tx *db.Tx, fromID, intoID, txID string, amount, form int64) ([]MovedLot, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, remaining, earned_at, expires_at FROM loyalty_lots
		WHERE member_id = $1 AND remaining > 0 ORDER BY expires_at, earned_at, id`, fromID)
	if err != nil {
		return nil, err
	}
	type lot struct {
		id              string
		remaining       int64
		earned, expires int64
	}
	var lots []lot
	var total int64
	for rows.Next() {
		var l lot
		if err := rows.Scan(&l.id, &l.remaining, &l.earned, &l.expires); err != nil {
			rows.Close()
			return nil, err
		}
		total += l.remaining
		lots = append(lots, l)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if total != amount {
		return nil, fmt.Errorf("merge: member %s lots hold %d points but its balance is %d", fromID, total, amount)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_lots SET remaining = 0 WHERE member_id = $1 AND remaining > 0`, fromID); err != nil {
		return nil, err
	}
	repay := amount - form
	moved := make([]MovedLot, 0, len(lots))
	for _, l := range lots {
		m := MovedLot{FromLotID: l.id, Points: l.remaining, ExpiresAt: db.FromMicros(l.expires)}
		keep := l.remaining - min(repay, l.remaining)
		repay -= l.remaining - keep
		if keep > 0 {
			m.LotID = newID()
			m.Points = keep
			if err := ledger.InsertLot(ctx, tx, ledger.Lot{ID: m.LotID, MemberID: intoID, TransactionID: txID,
				Points: ledger.Points(keep), EarnedAt: db.FromMicros(l.earned), ExpiresAt: m.ExpiresAt}); err != nil {
				return nil, err
			}
		}
		moved = append(moved, m)
	}
	return moved, nil
}

// insertAudit writes an audit record of a merge or an erasure. details
// never holds personal data.
func insertAudit(ctx context.Context, tx *db.Tx, id, memberID, action, actor, traceID, details string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_member_audit (id, member_id, action, actor, trace_id, details, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, memberID, action, actor, traceID, details, db.Micros(at))
	return err
}
