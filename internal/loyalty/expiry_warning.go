package loyalty

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// DefaultWarnChunk is how many candidate members WarnExpiring reads per
// query and warns per transaction (one span each).
const DefaultWarnChunk = 1000

// WarnReport summarises a WarnExpiring run.
type WarnReport struct {
	// Candidates is how many members were examined.
	Candidates int
	// LotsWarned is how many lots got their points.expiring warning.
	LotsWarned int
}

// WarnExpiring writes one points.expiring event for every lot whose points
// expire within the program's expiry.warning_days after now and that has not
// been warned about for that expiry instant yet; warning_days 0 does
// nothing. Under the lot policy a lot is due when its own expires_at is in
// (now, now+days]; under the inactivity policy every lot of a member whose
// inactivity expiry is in that window is due, with that expiry. A lot
// already expired (or whose expiry the expiry job has not applied yet) or
// spent (remaining 0) is not warned about.
//
// Each chunk of members is one transaction and one loyalty.expiry_warning_batch
// span: the warnings are rows of loyalty_lot_warnings keyed by (lot, expiry
// instant), inserted with ON CONFLICT DO NOTHING … RETURNING, and an event is
// written, in the same transaction, only for a row this insert created. So a
// second run warns nobody again, and two replicas running at once never both
// warn about a lot: on PostgreSQL the second insert of a key waits for the
// first transaction and then inserts nothing; SQLite has one writer. No
// member row is locked: a warning changes no balance, and an earning or
// spending at the same moment only makes the warned points slightly stale.
func (s *Service) WarnExpiring(ctx context.Context, now time.Time) (rep WarnReport, err error) {
	days := s.prog.Expiry.WarningDays
	if days <= 0 {
		return rep, nil
	}
	now = now.UTC()
	until := now.Add(time.Duration(days) * 24 * time.Hour)
	after := ""
	for {
		ids, err := s.warningCandidates(ctx, now, until, after, DefaultWarnChunk)
		if err != nil {
			return rep, internal("expiry warning: candidates", err)
		}
		if len(ids) > 0 {
			n, err := s.warnChunk(ctx, ids, now, until)
			if err != nil {
				return rep, internal("expiry warning", err)
			}
			rep.Candidates += len(ids)
			rep.LotsWarned += n
		}
		if len(ids) < DefaultWarnChunk {
			return rep, nil
		}
		after = ids[len(ids)-1].id
	}
}

// warnCandidate is a member to examine, with the instant their points expire
// under the inactivity policy (zero under the lot policy, where each lot has
// its own).
type warnCandidate struct {
	id      string
	expires time.Time
}

// warningCandidates reads, in id order after after, up to limit members who
// may have lots due for a warning in (now, until].
func (s *Service) warningCandidates(ctx context.Context, now, until time.Time, after string, limit int) ([]warnCandidate, error) {
	if s.prog.Expiry.Policy == program.ExpiryLot {
		rows, err := s.db.Read().QueryContext(ctx, `SELECT m.id FROM loyalty_members m WHERE m.id > $1 AND EXISTS (
			SELECT 1 FROM loyalty_lots l WHERE l.member_id = m.id AND l.remaining > 0 AND l.expires_at > $2 AND l.expires_at <= $3
			AND NOT EXISTS (SELECT 1 FROM loyalty_lot_warnings w WHERE w.lot_id = l.id AND w.expires_at = l.expires_at))
			ORDER BY m.id LIMIT $4`, after, db.Micros(now), db.Micros(until), limit)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []warnCandidate
		for rows.Next() {
			var c warnCandidate
			if err := rows.Scan(&c.id); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, rows.Err()
	}
	// Inactivity: the members whose last activity puts their expiry in the
	// window. AddMonths clamps to month ends, so the SQL bounds are loose by
	// a few days and the exact rule is applied here. A member read here but
	// not due is still counted as examined, and the page goes on from them.
	months := s.prog.Expiry.Months
	lo := program.AddMonths(now, -months).Add(-4 * 24 * time.Hour)
	hi := program.AddMonths(until, -months).Add(4 * 24 * time.Hour)
	rows, err := s.db.Read().QueryContext(ctx, `SELECT m.id, COALESCE(m.last_activity_at, m.created_at) FROM loyalty_members m
		WHERE m.id > $1 AND m.balance > 0 AND COALESCE(m.last_activity_at, m.created_at) > $2
		AND COALESCE(m.last_activity_at, m.created_at) <= $3 ORDER BY m.id LIMIT $4`, after, db.Micros(lo), db.Micros(hi), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []warnCandidate
	for rows.Next() {
		var (
			c    warnCandidate
			last int64
		)
		if err := rows.Scan(&c.id, &last); err != nil {
			return nil, err
		}
		c.expires = s.prog.InactivityExpiry(db.FromMicros(last))
		out = append(out, c)
	}
	return out, rows.Err()
}

// warnChunk warns about the due lots of the members cs in one transaction
// and returns how many lots it warned about.
func (s *Service) warnChunk(ctx context.Context, cs []warnCandidate, now, until time.Time) (warned int, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.expiry_warning_batch", trace.WithAttributes(
		attribute.String("loyalty.expiry_policy", s.prog.Expiry.Policy),
		attribute.Int("loyalty.warning_days", s.prog.Expiry.WarningDays),
		attribute.Int("loyalty.members_examined", len(cs)),
	))
	defer func() {
		span.SetAttributes(attribute.Int("loyalty.lots_warned", warned))
		endSpan(span, err)
	}()
	// The chunk as one JSON parameter: [member id, expiry instant or null].
	type row = [2]any
	rowsArg := make([]row, 0, len(cs))
	for _, c := range cs {
		if c.expires.IsZero() {
			rowsArg = append(rowsArg, row{c.id, nil})
		} else if c.expires.After(now) && !c.expires.After(until) {
			rowsArg = append(rowsArg, row{c.id, db.Micros(c.expires)})
		}
	}
	if len(rowsArg) == 0 {
		return 0, nil
	}
	arg, err := json.Marshal(rowsArg)
	if err != nil {
		return 0, err
	}
	// A null instant (the lot policy) means the lot's own expires_at.
	q := `WITH c AS (SELECT value->>0 AS member_id, CAST(value->>1 AS BIGINT) AS expires_at FROM ` + s.db.Dialect().JSONArrayRows(1) + `),
		due AS (SELECT l.id AS lot_id, COALESCE(c.expires_at, l.expires_at) AS expires_at, l.member_id, l.remaining AS points
			FROM c JOIN loyalty_lots l ON l.member_id = c.member_id WHERE l.remaining > 0)
		INSERT INTO loyalty_lot_warnings (lot_id, expires_at, member_id, points, warned_at)
		SELECT lot_id, expires_at, member_id, points, CAST($2 AS BIGINT) FROM due
		WHERE expires_at > CAST($2 AS BIGINT) AND expires_at <= CAST($3 AS BIGINT)
		ON CONFLICT (lot_id, expires_at) DO NOTHING
		RETURNING lot_id, expires_at, member_id, points`
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		rows, err := tx.QueryContext(ctx, q, string(arg), db.Micros(now), db.Micros(until))
		if err != nil {
			return err
		}
		var ws []events.PointsExpiringData
		for rows.Next() {
			var (
				w  events.PointsExpiringData
				at int64
			)
			if err := rows.Scan(&w.LotID, &at, &w.MemberID, &w.Points); err != nil {
				rows.Close()
				return err
			}
			w.ExpiresAt = db.FromMicros(at)
			ws = append(ws, w)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// Events in a stable order: by member, soonest expiry first.
		sort.Slice(ws, func(i, j int) bool {
			a, b := ws[i], ws[j]
			if a.MemberID != b.MemberID {
				return a.MemberID < b.MemberID
			}
			if !a.ExpiresAt.Equal(b.ExpiresAt) {
				return a.ExpiresAt.Before(b.ExpiresAt)
			}
			return a.LotID < b.LotID
		})
		var evs []events.Event
		for _, w := range ws {
			e, err := s.event(ctx, events.PointsExpiring, w.MemberID, now, w)
			if err != nil {
				return err
			}
			evs = append(evs, e...)
		}
		warned = len(ws)
		return s.emit(ctx, tx, evs...)
	})
	if err != nil {
		warned = 0
		return 0, fmt.Errorf("%d members: %w", len(cs), err)
	}
	return warned, nil
}

// ExpiryWarningPass runs WarnExpiring as of the service clock and logs what
// it did. ExpiryPass runs it after expiring, so a lot that expires in this
// pass is never warned about.
func (s *Service) ExpiryWarningPass(ctx context.Context) error {
	if s.prog.Expiry.WarningDays <= 0 {
		return nil
	}
	rep, err := s.WarnExpiring(ctx, s.now())
	if err == nil {
		s.log.InfoContext(ctx, "loyalty: expiry warnings", "warning_days", s.prog.Expiry.WarningDays,
			"members_examined", rep.Candidates, "lots_warned", rep.LotsWarned)
	}
	return err
}
