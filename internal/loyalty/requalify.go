package loyalty

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// RequalifyReport summarises a Requalify run.
type RequalifyReport struct {
	// Year is the status year requalified on (the calendar year before now).
	Year                            int
	Members                         int
	Upgraded, Downgraded, Unchanged int
	// Deferred members would have dropped but keep their tier for the
	// program's grace period (EndGracePeriods ends it).
	Deferred int
}

// Requalify runs the year-end tier requalification for the status year
// before now (UTC): each member's tier becomes the highest tier whose
// threshold their status points of that year met — or, if higher, the tier
// their status points of the new year already reach — and a status year
// still open is closed (its points kept as the previous year's, the
// current ones reset to zero). Each member is done once per year
// (loyalty_members.requalified_year), in its own transaction under its row
// lock, so re-runs and concurrent replicas change nothing twice.
func (s *Service) Requalify(ctx context.Context, now time.Time) (rep RequalifyReport, err error) {
	year := now.UTC().Year() - 1
	rep.Year = year
	ctx, span := s.tracer.Start(ctx, "loyalty.requalify_batch", trace.WithAttributes(
		attribute.String("loyalty.transaction_type", "requalification"),
		attribute.Int("loyalty.status_year", year),
	))
	defer func() {
		span.SetAttributes(
			attribute.Int("loyalty.members_requalified", rep.Members),
			attribute.Int("loyalty.upgraded", rep.Upgraded),
			attribute.Int("loyalty.downgraded", rep.Downgraded),
			attribute.Int("loyalty.downgrades_deferred", rep.Deferred),
		)
		endSpan(span, err)
	}()
	after := ""
	const chunk = 500
	for {
		rows, err := s.db.Read().QueryContext(ctx, `SELECT id FROM loyalty_members WHERE requalified_year < $1 AND id > $2 ORDER BY id LIMIT $3`,
			year, after, chunk)
		if err != nil {
			return rep, internal("requalify", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return rep, internal("requalify", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, internal("requalify", err)
		}
		for _, id := range ids {
			change, err := s.requalifyMember(ctx, id, year)
			if err != nil {
				return rep, internal("requalify", fmt.Errorf("member %s: %w", id, err))
			}
			switch change {
			case 0:
				continue // done by someone else meanwhile
			case 1:
				rep.Upgraded++
			case -1:
				rep.Downgraded++
			case 2:
				rep.Unchanged++
			case changeDeferred:
				rep.Deferred++
			}
			rep.Members++
		}
		if len(ids) < chunk {
			return rep, nil
		}
		after = ids[len(ids)-1]
	}
}

// requalifyMember returns 1 for an upgrade, -1 for a downgrade, 2 for no
// change and 0 when the member had already been requalified.
func (s *Service) requalifyMember(ctx context.Context, id string, year int) (change int, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.requalify_member", trace.WithAttributes(attribute.String("loyalty.member_id", id)))
	defer func() { endSpan(span, err) }()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		change = 0
		var st memberStatus
		err := tx.QueryRowContext(ctx, `SELECT tier, status_points, status_year, prev_status_points, prev_status_year, requalified_year
			FROM loyalty_members WHERE id = $1`+tx.ForUpdate(), id).Scan(&st.tier, &st.sp, &st.spYear, &st.prevSP, &st.prevYear, &st.requalYr)
		if err != nil || st.requalYr >= year {
			return err
		}
		next, last, after := s.requalify(st, year)
		next, reason, grace, ch := s.soften(st.tier, next, year, after.change)
		change = ch
		span.SetAttributes(
			attribute.String("loyalty.previous_tier", st.tier),
			attribute.String("loyalty.tier", next.ID),
			attribute.Int64("loyalty.status_points", last),
		)
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET tier = $2, status_points = $3, status_year = $4, prev_status_points = $5,
			prev_status_year = $6, requalified_year = $7, updated_at = $8 WHERE id = $1`,
			id, next.ID, after.sp, after.spYear, after.prevSP, after.prevYear, year, db.Micros(s.now()))
		if err != nil {
			return err
		}
		if err := writeGrace(ctx, tx, id, grace); err != nil {
			return err
		}
		evs, err := s.tierChange(ctx, id, st.tier, next.ID, reason, after.sp, s.now().UTC())
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, evs...)
	})
	return change, err
}

// memberStatus is a member's tier and status points as requalification
// reads and writes them.
type memberStatus struct {
	tier                       string
	sp, prevSP                 int64
	spYear, prevYear, requalYr int
	// change is requalifyMember's answer: 1 up, -1 down (or from a tier no
	// longer in the program), 2 kept.
	change int
}

// requalify closes status year year for a member not yet requalified on it:
// the new tier is the highest the year's status points reach (or the next
// year's, if higher), and the year's points move to the previous year's
// slot. It returns the tier, the year's status points and the status after.
func (s *Service) requalify(st memberStatus, year int) (program.Tier, int64, memberStatus) {
	var last, current int64
	switch {
	case st.spYear == year:
		last = st.sp
	case st.prevYear == year:
		last = st.prevSP
	}
	if st.spYear > year {
		current = st.sp
	}
	next := s.prog.TierFor(last)
	if t := s.prog.TierFor(current); t.Rank > next.Rank {
		next = t
	}
	prevTier, known := s.prog.Tier(st.tier)
	switch {
	case !known:
		st.change = -1
	case next.Rank > prevTier.Rank:
		st.change = 1
	case next.Rank < prevTier.Rank:
		st.change = -1
	default:
		st.change = 2
	}
	if st.spYear <= year {
		if st.spYear == year {
			st.prevSP, st.prevYear = st.sp, year
		}
		st.sp, st.spYear = 0, year+1
	}
	return next, last, st
}

// RequalificationPass runs Requalify for the clock's previous year once and
// ends the tier grace periods that are due: one pass of the requalification
// job. After the first pass of a year requalification finds nothing to do,
// and grace periods end on whole days, so a daily interval is fine.
func (s *Service) RequalificationPass(ctx context.Context) error {
	rep, err := s.Requalify(ctx, s.now())
	if err == nil && rep.Members > 0 {
		s.log.InfoContext(ctx, "loyalty: requalification", "status_year", rep.Year, "members", rep.Members,
			"upgraded", rep.Upgraded, "downgraded", rep.Downgraded, "deferred", rep.Deferred)
	}
	if err != nil {
		return err
	}
	// Grace periods end on their day, whatever the year: the daily pass
	// ends those that are due.
	g, err := s.EndGracePeriods(ctx, s.now())
	if err == nil && g.Downgraded+g.Kept > 0 {
		s.log.InfoContext(ctx, "loyalty: tier grace periods ended", "downgraded", g.Downgraded, "kept", g.Kept)
	}
	return err
}
