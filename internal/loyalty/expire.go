package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// DefaultExpireChunk is how many members ExpireBatch reads per query and
// expires per transaction. Thousands share a commit and a handful of
// statements; the transaction holds their row locks for tens of
// milliseconds, which a concurrent earn for one of them waits out.
const DefaultExpireChunk = 2000

// ExpireOptions tune ExpireBatch.
type ExpireOptions struct {
	// Now is the instant to expire as of; zero means the service clock.
	Now time.Time
	// ChunkSize is how many candidate members are read per query and
	// expired per transaction; 0 means DefaultExpireChunk.
	ChunkSize int
	// Progress, when set, is called after each chunk with the number done
	// and the number of candidates found at the start (done may pass total
	// when members become candidates during the run).
	Progress func(done, total int)
}

// ExpireReport summarises an ExpireBatch run.
type ExpireReport struct {
	Policy string
	Now    time.Time
	// Candidates is how many members were examined.
	Candidates int
	// AccountsAffected is how many members lost points.
	AccountsAffected   int
	TotalPointsExpired int64
	// Failed is how many members could not be processed (logged; retried
	// by the next run).
	Failed int
}

// ExpireBatch applies the program's expiry policy as of opts.Now:
//
//   - lot: every lot whose expires_at has passed expires;
//   - inactivity: every lot of a member whose last activity (or enrolment,
//     if none) plus the policy's months has passed expires.
//
// Members are processed a chunk per transaction, under their row locks
// (taken in id order) with their lots re-read inside the transaction, so
// concurrent earning and redeeming for a member simply serialise with it, and
// two runners (two replicas) never expire the same points twice: the second
// finds the lots already empty. Candidates are read in chunks by member id.
//
// Only spendable points expire: a member expires min(expired lots'
// remaining points, spendable balance). Points reserved by a pending hold
// stay (the hold will be captured — consuming those lots first, as they
// expire soonest — or voided, and the next run expires them); a member who
// owes points (negative balance) has nothing to expire. So expiry never
// makes a balance negative, and a second run with the same Now expires
// nothing.
func (s *Service) ExpireBatch(ctx context.Context, opts ExpireOptions) (rep ExpireReport, err error) {
	now := opts.Now
	if now.IsZero() {
		now = s.now()
	}
	now = now.UTC()
	chunk := opts.ChunkSize
	if chunk <= 0 {
		chunk = DefaultExpireChunk
	}
	rep = ExpireReport{Policy: s.prog.Expiry.Policy, Now: now}
	ctx, span := s.tracer.Start(ctx, "loyalty.expiration_batch", trace.WithAttributes(
		attribute.String("loyalty.transaction_type", "expiration"),
		attribute.String("loyalty.expiry_policy", rep.Policy),
	))
	defer func() {
		span.SetAttributes(
			attribute.Int("loyalty.accounts_affected", rep.AccountsAffected),
			attribute.Int64("loyalty.total_points_expired", rep.TotalPointsExpired),
			attribute.Int("loyalty.members_examined", rep.Candidates),
		)
		endSpan(span, err)
	}()

	total, err := s.countExpiryCandidates(ctx, now)
	if err != nil {
		return rep, internal("expire: count", err)
	}
	var failures []error
	after := ""
	for {
		ids, err := s.expiryCandidates(ctx, now, after, chunk)
		if err != nil {
			return rep, internal("expire: candidates", err)
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if len(ids) > 0 {
			s.expireMembers(ctx, ids, now, &rep, &failures)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if opts.Progress != nil {
				opts.Progress(rep.Candidates, total)
			}
		}
		if len(ids) < chunk {
			break
		}
		after = ids[len(ids)-1]
	}
	if len(failures) > 0 {
		return rep, internal("expire", fmt.Errorf("%d members failed: %w", len(failures), errors.Join(failures...)))
	}
	return rep, nil
}

// inactivityCutoff is a bound for the SQL filter: every member whose points
// have expired at now has last activity at or before it. AddMonths clamps
// to month ends, so the exact rule (InactivityExpiry(last) <= now) is
// checked in Go under the member's lock; the bound only needs to be loose.
func (s *Service) inactivityCutoff(now time.Time) time.Time {
	return program.AddMonths(now, -s.prog.Expiry.Months).Add(4 * 24 * time.Hour)
}

// candidateFilter is the condition on a loyalty_members row m that makes it
// an expiry candidate at $1 (the bound for the policy). Under the lot policy
// it probes the member's lots by loyalty_lots_member, so reading candidates
// in id order walks the members' primary key once over the whole run
// instead of every expired lot per chunk.
func (s *Service) candidateFilter(now time.Time) (string, any) {
	if s.prog.Expiry.Policy == program.ExpiryLot {
		return `EXISTS (SELECT 1 FROM loyalty_lots l WHERE l.member_id = m.id AND l.remaining > 0 AND l.expires_at <= $1)`, db.Micros(now)
	}
	return `m.balance > 0 AND COALESCE(m.last_activity_at, m.created_at) <= $1`, db.Micros(s.inactivityCutoff(now))
}

// countExpiryCandidates counts the members candidateFilter selects. Under the
// lot policy it walks the members with the same probe rather than the expired
// lots: no index on lots by expiry is kept (migration 00046), since one would
// cost every lot insert an index entry and keep lot updates from being HOT on
// PostgreSQL, and the run that follows walks the members anyway.
func (s *Service) countExpiryCandidates(ctx context.Context, now time.Time) (int, error) {
	filter, bound := s.candidateFilter(now)
	var n int
	err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM loyalty_members m WHERE `+filter, bound).Scan(&n)
	return n, err
}

func (s *Service) expiryCandidates(ctx context.Context, now time.Time, after string, limit int) ([]string, error) {
	filter, bound := s.candidateFilter(now)
	rows, err := s.db.Read().QueryContext(ctx, `SELECT m.id FROM loyalty_members m WHERE m.id > $2 AND `+filter+` ORDER BY m.id LIMIT $3`,
		bound, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]string, 0, min(limit, 4096))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// expireMembers expires the members ids in one transaction (expireChunk). If
// that fails, it goes member by member, so one member whose expiry cannot be
// written does not hold back the rest; those failures are logged and counted.
func (s *Service) expireMembers(ctx context.Context, ids []string, now time.Time, rep *ExpireReport, failures *[]error) {
	c, err := s.expireChunk(ctx, ids, now)
	if err == nil {
		rep.Candidates += len(ids)
		rep.AccountsAffected += c.affected
		rep.TotalPointsExpired += c.total
		return
	}
	if ctx.Err() != nil {
		return
	}
	s.log.WarnContext(ctx, "loyalty: expiring a chunk of members failed; retrying one by one", "members", len(ids), "error", err.Error())
	for _, id := range ids {
		points, err := s.expireMember(ctx, id, now)
		rep.Candidates++
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			rep.Failed++
			s.log.ErrorContext(ctx, "loyalty: expiring a member's points failed", "member_id", id, "error", err.Error())
			*failures = append(*failures, fmt.Errorf("member %s: %w", id, err))
		} else if points > 0 {
			rep.AccountsAffected++
			rep.TotalPointsExpired += points
		}
	}
}

// expireMember expires one member's points in its own transaction and
// returns how many expired. ExpireBatch falls back to it when a chunk fails.
func (s *Service) expireMember(ctx context.Context, memberID string, now time.Time) (expired int64, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.expire_member_points", trace.WithAttributes(attribute.String("loyalty.member_id", memberID)))
	defer func() {
		span.SetAttributes(attribute.Int64("loyalty.points_expiring", expired))
		endSpan(span, err)
	}()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		expired = 0
		m, err := lockMember(ctx, tx, memberID)
		if err != nil {
			return err
		}
		avail := max(m.Balance, 0)
		if avail == 0 {
			return nil
		}
		var rows *sql.Rows
		if s.prog.Expiry.Policy == program.ExpiryLot {
			rows, err = tx.QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots WHERE member_id = $1 AND remaining > 0 AND expires_at <= $2
				ORDER BY expires_at, earned_at, id`, m.ID, db.Micros(now))
		} else {
			last := m.LastActivityAt
			if last.IsZero() {
				last = m.CreatedAt
			}
			if !program.IsExpired(s.prog.InactivityExpiry(last), now) {
				return nil
			}
			rows, err = tx.QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots WHERE member_id = $1 AND remaining > 0
				ORDER BY expires_at, earned_at, id`, m.ID)
		}
		if err != nil {
			return err
		}
		var uses []LotUse
		left := avail
		for rows.Next() && left > 0 {
			var u LotUse
			var remaining int64
			if err := rows.Scan(&u.LotID, &remaining); err != nil {
				rows.Close()
				return err
			}
			u.Points = min(remaining, left)
			left -= u.Points
			expired += u.Points
			uses = append(uses, u)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if expired == 0 {
			return nil
		}
		for _, u := range uses {
			if _, err := tx.ExecContext(ctx, `UPDATE loyalty_lots SET remaining = remaining - $2 WHERE id = $1`, u.LotID, u.Points); err != nil {
				return err
			}
		}
		bd, err := json.Marshal(Breakdown{Policy: s.prog.Expiry.Policy, Lots: uses})
		if err != nil {
			return err
		}
		after := m.Balance + m.Pending - expired
		if err := insertTransaction(ctx, tx, newID(), TxExpire, m.ID, "", string(bd), actorOf(ctx), traceIDOf(ctx), now,
			posting{MemberAccount(m.ID), -expired, &after}, posting{AccountExpiry, expired, nil}); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance - $2, updated_at = $3 WHERE id = $1`, m.ID, expired, db.Micros(now))
		return err
	})
	if err != nil {
		expired = 0
		return 0, err
	}
	if expired > 0 && s.expired != nil {
		s.expired.Add(ctx, expired, metric.WithAttributes(attribute.String("loyalty.expiry_policy", s.prog.Expiry.Policy)))
	}
	return expired, nil
}

// VoidExpiredHolds voids every pending hold whose expires_at is at or
// before now, so a redemption, transfer or checkout whose process died
// mid-way does not keep the points pending forever. The redemption or
// transfer that owned the hold is marked failed. Each hold is voided in its
// own transaction under the member's lock after re-reading it, so replicas
// running this at once void each hold once. It returns how many it voided.
func (s *Service) VoidExpiredHolds(ctx context.Context, now time.Time) (n int, err error) {
	now = now.UTC()
	ctx, span := s.tracer.Start(ctx, "loyalty.void_expired_holds")
	defer func() {
		span.SetAttributes(attribute.Int("loyalty.holds_voided", n))
		endSpan(span, err)
	}()
	const batch = 200
	after := ""
	for {
		rows, err := s.db.Read().QueryContext(ctx, `SELECT id FROM loyalty_holds WHERE status = 'pending' AND expires_at <= $1 AND id > $2
			ORDER BY id LIMIT $3`, db.Micros(now), after, batch)
		if err != nil {
			return n, internal("void expired holds", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return n, internal("void expired holds", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, internal("void expired holds", err)
		}
		for _, id := range ids {
			voided := false
			err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				voided = false
				h, _, err := lockHold(ctx, tx, id)
				if err != nil {
					return err
				}
				if h.Status != HoldPending || h.ExpiresAt.After(now) {
					return nil
				}
				if err := voidHoldTx(ctx, tx, h, now); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE loyalty_redemptions SET status = 'failed', failure = 'hold expired', updated_at = $2
					WHERE hold_id = $1 AND status = 'pending'`, h.ID, db.Micros(now)); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE loyalty_transfers SET status = 'failed', updated_at = $2
					WHERE hold_id = $1 AND status = 'pending'`, h.ID, db.Micros(now)); err != nil {
					return err
				}
				voided = true
				return nil
			})
			if err != nil {
				return n, internal("void expired hold", err)
			}
			if voided {
				n++
				s.log.WarnContext(ctx, "loyalty: voided an expired points hold", "hold_id", id)
			}
		}
		if len(ids) < batch {
			return n, nil
		}
		after = ids[len(ids)-1]
	}
}

// ExpiryPass runs ExpireBatch once and logs the result: one pass of the
// points expiry job (serve's --expiry-interval, 24h by default). Replicas
// may all run it: see ExpireBatch.
func (s *Service) ExpiryPass(ctx context.Context) error {
	rep, err := s.ExpireBatch(ctx, ExpireOptions{})
	if err == nil {
		s.log.InfoContext(ctx, "loyalty: expiry run", "policy", rep.Policy, "members_examined", rep.Candidates,
			"accounts_affected", rep.AccountsAffected, "total_points_expired", rep.TotalPointsExpired)
	}
	return err
}

// DefaultHoldReaperInterval suits the default 30-minute hold TTL.
const DefaultHoldReaperInterval = time.Minute

// HoldReaperPass runs VoidExpiredHolds once: one pass of the hold reaper
// job. Replicas may all run it: a void changes only a hold still open.
func (s *Service) HoldReaperPass(ctx context.Context) error {
	_, err := s.VoidExpiredHolds(ctx, s.now())
	return err
}
