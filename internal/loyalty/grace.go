package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// changeDeferred is requalifyMember's answer for a member who would drop
// but keeps their tier for the program's grace period.
const changeDeferred = 3

// tierGrace is a drop put off by the grace period: the member keeps from
// until at, then drops to to unless their status points of the new year
// reach from first.
type tierGrace struct {
	from, to string
	at       time.Time
	year     int
}

// soften applies the program's requalification settings to a tier the
// requalification of year would move a member of tier fromID to. A drop is
// limited to one tier with soft landing (the reason becomes soft_landing),
// and with a grace period put off: the member keeps fromID and the drop is
// returned as a grace. Moves up, unchanged tiers and members of a tier no
// longer in the program pass through.
func (s *Service) soften(fromID string, next program.Tier, year, change int) (program.Tier, string, *tierGrace, int) {
	from, known := s.prog.Tier(fromID)
	if !known || next.Rank >= from.Rank {
		return next, events.ReasonRequalification, nil, change
	}
	to, soft := s.prog.Landing(from, next)
	reason := events.ReasonRequalification
	if soft {
		reason = events.ReasonSoftLanding
	}
	if days := s.prog.Requalification.GraceDays; days > 0 {
		return from, reason, &tierGrace{from: from.ID, to: to.ID, at: graceEnd(year, days), year: year}, changeDeferred
	}
	return to, reason, nil, change
}

// graceEnd is when a grace period of days after the requalification of
// status year year ends: that many days into the next status year.
func graceEnd(year, days int) time.Time {
	return time.Date(year+1, time.January, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, days)
}

// writeGrace replaces the member's grace row: a requalification's decision
// supersedes any left from an earlier year.
func writeGrace(ctx context.Context, tx *db.Tx, memberID string, g *tierGrace) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM loyalty_tier_grace WHERE member_id = $1`, memberID); err != nil {
		return fmt.Errorf("clear tier grace: %w", err)
	}
	if g == nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_tier_grace (member_id, from_tier, to_tier, downgrade_at, status_year)
		VALUES ($1, $2, $3, $4, $5)`, memberID, g.from, g.to, db.Micros(g.at), g.year)
	if err != nil {
		return fmt.Errorf("record tier grace: %w", err)
	}
	return nil
}

// GraceReport summarises an EndGracePeriods run.
type GraceReport struct {
	// Downgraded members dropped when their grace ended; Kept had
	// requalified during it (or changed tier meanwhile).
	Downgraded, Kept int
}

// EndGracePeriods ends the grace periods due by now: a member whose status
// points of the new status year reach the tier they kept keeps it; the
// others drop to the tier the requalification decided (or the one their
// new points reach, if higher), with a tier.changed event of reason
// grace_expired. Each member is done in its own transaction under its row
// lock, and the grace row goes with it, so re-runs and concurrent replicas
// end each grace once.
func (s *Service) EndGracePeriods(ctx context.Context, now time.Time) (rep GraceReport, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.tier_grace_batch")
	defer func() {
		span.SetAttributes(
			attribute.Int("loyalty.downgraded", rep.Downgraded),
			attribute.Int("loyalty.grace_kept", rep.Kept),
		)
		endSpan(span, err)
	}()
	after := ""
	const chunk = 500
	for {
		ids, err := s.dueGraces(ctx, now, after, chunk)
		if err != nil {
			return rep, internal("end grace periods", err)
		}
		for _, id := range ids {
			dropped, done, err := s.endGrace(ctx, id, now)
			if err != nil {
				return rep, internal("end grace periods", fmt.Errorf("member %s: %w", id, err))
			}
			switch {
			case !done:
			case dropped:
				rep.Downgraded++
			default:
				rep.Kept++
			}
		}
		if len(ids) < chunk {
			return rep, nil
		}
		after = ids[len(ids)-1]
	}
}

func (s *Service) dueGraces(ctx context.Context, now time.Time, after string, limit int) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT member_id FROM loyalty_tier_grace WHERE downgrade_at <= $1 AND member_id > $2
		ORDER BY member_id LIMIT $3`, db.Micros(now), after, limit)
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

// endGrace ends one member's grace period; done is false when another run
// ended it first.
func (s *Service) endGrace(ctx context.Context, id string, now time.Time) (dropped, done bool, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.tier_grace_member", trace.WithAttributes(attribute.String("loyalty.member_id", id)))
	defer func() { endSpan(span, err) }()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		dropped, done = false, false
		var (
			tier, fromID, toID string
			sp, at             int64
			spYear             int
		)
		err := tx.QueryRowContext(ctx, `SELECT m.tier, m.status_points, m.status_year, g.from_tier, g.to_tier, g.downgrade_at
			FROM loyalty_members m JOIN loyalty_tier_grace g ON g.member_id = m.id
			WHERE m.id = $1 AND g.downgrade_at <= $2`+tx.Dialect().ForUpdateOf("m"), id, db.Micros(now)).
			Scan(&tier, &sp, &spYear, &fromID, &toID, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		done = true
		if _, err := tx.ExecContext(ctx, `DELETE FROM loyalty_tier_grace WHERE member_id = $1`, id); err != nil {
			return err
		}
		g := tierGrace{from: fromID, to: toID, at: db.FromMicros(at)}
		to, drop := s.graceOutcome(tier, g, graceYearPoints(g, sp, spYear))
		span.SetAttributes(attribute.String("loyalty.previous_tier", tier), attribute.String("loyalty.tier", to.ID))
		if !drop {
			return nil
		}
		dropped = true
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET tier = $2, updated_at = $3 WHERE id = $1`,
			id, to.ID, db.Micros(s.now())); err != nil {
			return err
		}
		evs, err := s.tierChange(ctx, id, tier, to.ID, events.ReasonGraceExpired, graceYearPoints(g, sp, spYear), s.now().UTC())
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, evs...)
	})
	return dropped, done, err
}

// graceYearPoints are the member's status points of the status year their
// grace runs in (none if their points are of another year).
func graceYearPoints(g tierGrace, sp int64, spYear int) int64 {
	if spYear == g.at.Year() {
		return sp
	}
	return 0
}

// graceOutcome decides a grace period for a member now of tier with points
// status points in the grace's year: drop (to the tier decided at
// requalification, or the one points reach if higher) or keep. A member
// whose tier changed since the requalification, or whose points reach the
// tier they kept, keeps it.
func (s *Service) graceOutcome(tier string, g tierGrace, points int64) (program.Tier, bool) {
	from, known := s.prog.Tier(tier)
	if !known || tier != g.from {
		return from, false
	}
	reached := s.prog.TierFor(points)
	if reached.Rank >= from.Rank {
		return from, false
	}
	to, ok := s.prog.Tier(g.to)
	if !ok || reached.Rank > to.Rank {
		to = reached
	}
	return to, to.Rank < from.Rank
}

// WillDowngrade says a member is due to drop a tier: the tier and when.
type WillDowngrade struct {
	Tier     string    `json:"tier"`
	TierName string    `json:"tier_name"`
	At       time.Time `json:"at"`
}

// WillDowngrade returns the drop the member is due for, if it is at most the
// program's requalification.notice_days away, or nil: a grace period whose
// end the member's new status points do not yet secure, or else the coming
// year-end requalification that the status points of the current year do
// not secure (at the end of the year, or of the grace that will follow).
func (s *Service) WillDowngrade(ctx context.Context, m Member) (*WillDowngrade, error) {
	notice := s.prog.Requalification.NoticeDays
	if notice <= 0 {
		return nil, nil
	}
	now := s.now().UTC()
	var (
		fromID, toID string
		at           int64
	)
	err := s.db.Read().QueryRowContext(ctx, `SELECT from_tier, to_tier, downgrade_at FROM loyalty_tier_grace WHERE member_id = $1`, m.ID).
		Scan(&fromID, &toID, &at)
	var (
		to   program.Tier
		drop bool
		when time.Time
	)
	switch {
	case err == nil:
		g := tierGrace{from: fromID, to: toID, at: db.FromMicros(at)}
		to, drop = s.graceOutcome(m.Tier, g, graceYearPoints(g, m.StatusPoints, m.StatusYear))
		when = g.at
	case errors.Is(err, sql.ErrNoRows):
		// The year-end requalification to come: of the member's status
		// year if it has not been closed yet, else of the current year.
		year, points := now.Year(), int64(0)
		if m.StatusYear >= year-1 {
			year, points = min(m.StatusYear, year), m.StatusPoints
		}
		from, known := s.prog.Tier(m.Tier)
		if !known {
			return nil, nil
		}
		to, _ = s.prog.Landing(from, s.prog.TierFor(points))
		drop = to.Rank < from.Rank
		when = graceEnd(year, s.prog.Requalification.GraceDays)
	default:
		return nil, internal("will downgrade", err)
	}
	if !drop || now.Before(when.AddDate(0, 0, -notice)) {
		return nil, nil
	}
	return &WillDowngrade{Tier: to.ID, TierName: to.Name, At: when}, nil
}
