package loyalty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// DefaultVestChunk is how many members VestBatch reads per query.
const DefaultVestChunk = 500

// VestOptions tune VestBatch.
type VestOptions struct {
	// Now is the instant to vest as of; zero means the service clock.
	Now time.Time
	// ChunkSize is how many members with due pending points are read per
	// query; 0 means DefaultVestChunk.
	ChunkSize int
}

// VestReport summarises a VestBatch run.
type VestReport struct {
	Now time.Time
	// Candidates is how many members had pending points due.
	Candidates int
	// AccountsAffected is how many members had points vested by this run.
	AccountsAffected int
	// EarningsVested counts the pending earnings vested.
	EarningsVested    int
	TotalPointsVested int64
	// Failed is how many members could not be processed (logged; retried
	// by the next run).
	Failed int
}

// VestBatch vests every pending earning whose vests_at is at or before
// opts.Now: a member at a time, in the member's own transaction under the
// member's row lock, with the member's due pending rows re-read inside it.
// Two runners (two replicas) therefore never vest the same points twice —
// the second finds the rows vested — and a run repeated with the same Now
// vests nothing. Each earning vests in its own TxVest transaction (its
// idempotency key is the pending row's), which forms a lot, adds the
// earning's status points to the status year of the vesting (upgrading the
// tier they reach) and emits points.earned.
func (s *Service) VestBatch(ctx context.Context, opts VestOptions) (rep VestReport, err error) {
	now := opts.Now
	if now.IsZero() {
		now = s.now()
	}
	now = now.UTC()
	chunk := opts.ChunkSize
	if chunk <= 0 {
		chunk = DefaultVestChunk
	}
	rep = VestReport{Now: now}
	ctx, span := s.tracer.Start(ctx, "loyalty.vesting_batch", trace.WithAttributes(
		attribute.String("loyalty.transaction_type", TxVest),
	))
	defer func() {
		span.SetAttributes(
			attribute.Int("loyalty.members_examined", rep.Candidates),
			attribute.Int("loyalty.accounts_affected", rep.AccountsAffected),
			attribute.Int("loyalty.earnings_vested", rep.EarningsVested),
			attribute.Int64("loyalty.total_points_vested", rep.TotalPointsVested),
		)
		endSpan(span, err)
	}()
	var failures []error
	after := ""
	for {
		ids, err := s.vestCandidates(ctx, now, after, chunk)
		if err != nil {
			return rep, internal("vest: candidates", err)
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			n, points, err := s.vestMember(ctx, id, now)
			rep.Candidates++
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				rep.Failed++
				s.log.ErrorContext(ctx, "loyalty: vesting a member's pending points failed", "member_id", id, "error", err.Error())
				failures = append(failures, fmt.Errorf("member %s: %w", id, err))
			case n > 0:
				rep.AccountsAffected++
				rep.EarningsVested += n
				rep.TotalPointsVested += points
			}
		}
		if len(ids) < chunk {
			break
		}
		after = ids[len(ids)-1]
	}
	if len(failures) > 0 {
		return rep, internal("vest", fmt.Errorf("%d members failed: %w", len(failures), errors.Join(failures...)))
	}
	return rep, nil
}

// vestCandidates reads up to limit ids of members with pending points due
// at now, after the id after, in id order (loyalty_pending_due).
func (s *Service) vestCandidates(ctx context.Context, now time.Time, after string, limit int) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT DISTINCT member_id FROM loyalty_pending
		WHERE status = 'pending' AND vests_at <= $1 AND member_id > $2 ORDER BY member_id LIMIT $3`, db.Micros(now), after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// vestMember vests one member's due pending points in its own transaction
// and returns how many earnings and points vested.
func (s *Service) vestMember(ctx context.Context, memberID string, now time.Time) (n int, vested int64, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.vest_member_points", trace.WithAttributes(attribute.String("loyalty.member_id", memberID)))
	defer func() {
		span.SetAttributes(attribute.Int("loyalty.earnings_vested", n), attribute.Int64("loyalty.points_vested", vested))
		endSpan(span, err)
	}()
	err = s.updateMember(ctx, memberID, func(ctx context.Context, tx *db.Tx, m Member) (err error) {
		n, vested, err = s.vestMemberTx(ctx, tx, m, now)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if vested > 0 && s.vested != nil {
		s.vested.Add(ctx, vested)
	}
	return n, vested, nil
}

// dueEarning is a pending earning due to vest, with its earning's breakdown.
type dueEarning struct {
	pendingEarning
	breakdown string
}

// vestMemberTx vests member m's due pending earnings, m's row being locked.
func (s *Service) vestMemberTx(ctx context.Context, tx *db.Tx, m Member, now time.Time) (int, int64, error) {
	due, err := s.dueEarnings(ctx, tx, m.ID, now)
	if err != nil || len(due) == 0 {
		return 0, 0, err
	}
	s.rollStatusYear(&m, now)
	var total int64
	for _, d := range due {
		var orig Breakdown
		if err := json.Unmarshal([]byte(d.breakdown), &orig); err != nil {
			return 0, 0, fmt.Errorf("decode earning breakdown of %s: %w", d.transactionID, err)
		}
		statusPoints := m.StatusPoints + d.statusPoints
		tier := m.Tier
		if t := s.prog.TierFor(statusPoints); t.Rank > s.memberTier(m).Rank {
			tier = t.ID
		}
		balance := m.Balance + d.points
		evs, err := s.vestEvents(ctx, m, d.pendingEarning, orig, balance, tier, statusPoints, now)
		if err != nil {
			return 0, 0, err
		}
		bd := orig
		bd.Lots, bd.VestedTransaction = nil, d.transactionID
		raw, err := json.Marshal(bd)
		if err != nil {
			return 0, 0, err
		}
		vestID := newID()
		with := []ledger.Stmt{{SQL: `UPDATE loyalty_pending SET status = 'vested', settled_transaction_id = $1::text, settled_at = $2::bigint
			WHERE id = $3::text AND status = 'pending'`, Args: []any{vestID, db.Micros(now), d.id}}}
		if st := s.eventStmt(evs...); st != nil {
			with = append(with, *st)
		}
		if err := ledger.PostCredit(ctx, tx, ledger.Credit{
			ID: vestID, Type: TxVest, MemberID: m.ID, Key: "vest:" + d.id, Breakdown: string(raw),
			Actor: actorOf(ctx), TraceID: traceIDOf(ctx), At: now,
			From: PendingAccount(m.ID), Points: ledger.Points(d.points), Before: balanceOf(m),
			LotID: newID(), LotExpires: s.prog.ExpiryFor(now),
			MemberSet: ledger.Stmt{SQL: `status_points = $1::bigint, status_year = $2::integer, tier = $3::text, updated_at = $4::bigint,
		prev_status_points = CASE WHEN status_year < $2::integer THEN status_points ELSE prev_status_points END,
		prev_status_year = CASE WHEN status_year < $2::integer THEN status_year ELSE prev_status_year END`,
				Args: []any{statusPoints, now.Year(), tier, db.Micros(now)}},
			With: with,
		}); err != nil {
			return 0, 0, err
		}
		m.Balance, m.StatusPoints, m.StatusYear, m.Tier = balance, statusPoints, now.Year(), tier
		total += d.points
	}
	return len(due), total, nil
}

// dueEarnings reads member memberID's pending earnings due at now,
// soonest-vesting first, with their earnings' breakdowns.
func (s *Service) dueEarnings(ctx context.Context, tx *db.Tx, memberID string, now time.Time) ([]dueEarning, error) {
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.transaction_id, d.activity_type, d.points, d.status_points, d.vests_at, t.breakdown
		FROM loyalty_pending d JOIN loyalty_transactions t ON t.id = d.transaction_id
		WHERE d.member_id = $1 AND d.status = 'pending' AND d.vests_at <= $2 ORDER BY d.vests_at, d.id`, memberID, db.Micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var due []dueEarning
	for rows.Next() {
		var d dueEarning
		var vests int64
		if err := rows.Scan(&d.id, &d.transactionID, &d.activityType, &d.points, &d.statusPoints, &vests, &d.breakdown); err != nil {
			return nil, err
		}
		d.memberID, d.status, d.vestsAt = memberID, pendingOpen, db.FromMicros(vests)
		due = append(due, d)
	}
	return due, rows.Err()
}

// DefaultVestingInterval is how often serve runs the vest job: pending
// points vest within the hour of their vests_at.
const DefaultVestingInterval = time.Hour

// VestingPass runs VestBatch once and logs the result: one pass of the
// vest job (serve's --vesting-interval). Replicas may all run it: see
// VestBatch.
func (s *Service) VestingPass(ctx context.Context) error {
	rep, err := s.VestBatch(ctx, VestOptions{})
	if err == nil && rep.Candidates > 0 {
		s.log.InfoContext(ctx, "loyalty: vesting run", "members_examined", rep.Candidates,
			"accounts_affected", rep.AccountsAffected, "earnings_vested", rep.EarningsVested, "total_points_vested", rep.TotalPointsVested)
	}
	return err
}

// vestedCounter registers loyalty.points_vested_total.
func vestedCounter(m metric.Meter) (metric.Int64Counter, error) {
	return m.Int64Counter("loyalty.points_vested_total",
		metric.WithDescription("Pending points vested (moved to members' spendable balances) by the vest job"),
		metric.WithUnit("{point}"))
}
