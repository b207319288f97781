package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/ledger"
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
	// DryRun reports what the run would expire, by the same rules, and
	// writes nothing: no lot, ledger transaction or balance changes, and no
	// row is locked.
	DryRun bool
}

// ExpireReport summarises an ExpireBatch run.
type ExpireReport struct {
	Policy string
	Now    time.Time
	// DryRun says nothing was written: AccountsAffected and
	// TotalPointsExpired are what a run would have expired.
	DryRun bool
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
	rep = ExpireReport{Policy: s.prog.Expiry.Policy, Now: now, DryRun: opts.DryRun}
	ctx, span := s.tracer.Start(ctx, "loyalty.expiration_batch", trace.WithAttributes(
		attribute.String("loyalty.transaction_type", "expiration"),
		attribute.String("loyalty.expiry_policy", rep.Policy),
		attribute.Bool("loyalty.dry_run", opts.DryRun),
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
		if len(ids) > 0 && opts.DryRun {
			c, err := s.previewChunk(ctx, ids, now)
			if err != nil {
				return rep, internal("expire: dry run", err)
			}
			rep.Candidates += len(ids)
			rep.AccountsAffected += c.affected
			rep.TotalPointsExpired += c.total
			if opts.Progress != nil {
				opts.Progress(rep.Candidates, total)
			}
		} else if len(ids) > 0 {
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
	err = s.updateMember(ctx, memberID, func(ctx context.Context, tx *db.Tx, m Member) (err error) {
		expired, err = s.expireMemberTx(ctx, tx, m, now)
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

// expireMemberTx expires member m's spendable points in expired lots, the
// member's row being locked: the lots give them up soonest-expiring first,
// and a transaction moves them to sink:expiry.
func (s *Service) expireMemberTx(ctx context.Context, tx *db.Tx, m Member, now time.Time) (int64, error) {
	avail := max(m.Balance, 0)
	if avail == 0 {
		return 0, nil
	}
	rows, due, err := s.expiringLots(ctx, tx, m, now)
	if err != nil || !due {
		return 0, err
	}
	uses, err := ledger.TakeFromLots(ctx, tx, rows, ledger.Points(avail))
	if err != nil {
		return 0, err
	}
	expired := ledger.Used(uses)
	if expired == 0 {
		return 0, nil
	}
	bd, err := json.Marshal(Breakdown{Policy: s.prog.Expiry.Policy, Lots: uses})
	if err != nil {
		return 0, err
	}
	after := balanceOf(m).Ledger() - expired
	txID := newID()
	if err := ledger.Post(ctx, tx, ledger.Transaction{ID: txID, Type: TxExpire, MemberID: m.ID, Breakdown: string(bd),
		Actor: actorOf(ctx), TraceID: traceIDOf(ctx), At: now,
		Postings: []ledger.Posting{ledger.Member(m.ID, -expired, after), ledger.To(AccountExpiry, expired)}}); err != nil {
		return 0, err
	}
	if err := ledger.AddToBalance(ctx, tx, m.ID, -expired, now, ledger.Stmt{}); err != nil {
		return 0, err
	}
	evs, err := s.event(ctx, events.PointsExpired, m.ID, now, events.PointsExpiredData{
		MemberID: m.ID, TransactionID: txID, Points: int64(expired), Balance: m.Balance - int64(expired)})
	if err != nil {
		return 0, err
	}
	return int64(expired), s.emit(ctx, tx, evs...)
}

// expiringLots reads the member's lots that have expired at now (id,
// remaining), soonest-expiring first: under the lot policy the lots past
// their expiry, under the inactivity policy all of them once the member's
// inactivity has expired them, and none before (due is false).
func (s *Service) expiringLots(ctx context.Context, tx *db.Tx, m Member, now time.Time) (rows *sql.Rows, due bool, err error) {
	if s.prog.Expiry.Policy == program.ExpiryLot {
		rows, err = tx.QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots WHERE member_id = $1 AND remaining > 0 AND expires_at <= $2
			ORDER BY expires_at, earned_at, id`, m.ID, db.Micros(now))
		return rows, err == nil, err
	}
	last := m.LastActivityAt
	if last.IsZero() {
		last = m.CreatedAt
	}
	if !program.IsExpired(s.prog.InactivityExpiry(last), now) {
		return nil, false, nil
	}
	rows, err = tx.QueryContext(ctx, `SELECT id, remaining FROM loyalty_lots WHERE member_id = $1 AND remaining > 0
		ORDER BY expires_at, earned_at, id`, m.ID)
	return rows, err == nil, err
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
		ids, err := s.expiredHolds(ctx, now, after, batch)
		if err != nil {
			return n, internal("void expired holds", err)
		}
		for _, id := range ids {
			voided, err := s.voidExpiredHold(ctx, id, now)
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

// expiredHolds reads up to limit ids of pending holds expired at now, after
// the id after, in id order.
func (s *Service) expiredHolds(ctx context.Context, now time.Time, after string, limit int) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id FROM loyalty_holds WHERE status = 'pending' AND expires_at <= $1 AND id > $2
		ORDER BY id LIMIT $3`, db.Micros(now), after, limit)
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

// voidExpiredHold voids a hold if, under its member's lock, it is still
// pending and expired, and marks the redemption or transfer that owned it
// failed. It says whether it voided.
func (s *Service) voidExpiredHold(ctx context.Context, id string, now time.Time) (voided bool, err error) {
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		voided = false
		var m Member
		h, err := ledger.LockHold(ctx, tx, id, memberHolder(&m, "m"))
		if err != nil {
			return holdErr(err, id)
		}
		if h.Status != HoldPending || h.ExpiresAt.After(now) {
			return nil
		}
		if err := ledger.VoidHold(ctx, tx, h, now); err != nil {
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
	return voided, err
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
