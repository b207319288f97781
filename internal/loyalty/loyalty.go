// Package loyalty is the loyalty-points service: members, earning (base,
// tier bonus, promotions), redemption, transfers, expiry, reversals,
// requalification, holds for pay-with-points, the member statement and the
// books' invariant check.
//
// The program's rules (earning tables, tiers, promotions arithmetic, expiry)
// live in package program; the double-entry points ledger (accounts,
// postings, lots, holds, its invariants) in package ledger. This package
// decides with the first and books with the second. Every change of
// a member's points happens in one database transaction that locks only that
// member's row, so unrelated members never wait for each other.
//
// Decisions worth knowing:
//
//   - Balances. A member's spendable Balance excludes points reserved by
//     pending holds (Pending). A hold writes no postings; the ledger moves at
//     capture (member → sink:redemption). So the member account's postings sum
//     to Balance + Pending, and a statement's balance_after is that ledger
//     balance. The program:issuance account has no balance row at all: its
//     balance is the sum of its postings, so it is never a hot lock.
//   - Lots are consumed at capture, soonest-expiring first; pending points are
//     still in lots, so the lots of a member always hold Balance + Pending.
//   - Time. Promotion windows use the activity's occurred_at (which may be
//     up to 12 months old and at most 5 minutes in the future). Status years,
//     lot expiry and last_activity_at use the time the points are credited
//     (the service clock): status points roll over when the first activity of
//     a new calendar year (UTC) is credited, and the tier is kept (yearly
//     re-qualification is the year-end job's business).
//   - Expiry. Each lot gets program.ExpiryFor(credit time). Under the
//     inactivity policy the member-level rule is authoritative: points expire
//     InactivityExpiry(members.last_activity_at), which earning and capture
//     move forward; the lots' own expires_at is not rewritten on every
//     activity (that would make earning O(lots)), it orders consumption.
//   - External ids are unique per source: "shop" for purchases (whichever path
//     delivers them), otherwise the caller's actor ("service:airline"). A repeat
//     with the same details replays the stored result; different details are
//     errs Conflict "external_id_conflict".
//
// Loyalty II (redemption, transfers, expiry, reversals, requalification):
//
//   - Two-phase debits. Redemptions and partner transfers hold the points
//     (one transaction under the member lock), call the provider outside any
//     transaction (bounded to half the hold TTL), then capture or void in a
//     second transaction that runs even if the caller has gone. A crashed
//     process leaves a pending hold that VoidExpiredHolds voids after the
//     TTL. Member-to-member transfers are one transaction locking both
//     members in id order.
//   - Negative balances. Only reversals and negative adjustments can take a
//     balance below zero; a negative balance blocks redemptions and
//     transfers (errs Unprocessable "negative_balance"). Lots hold
//     max(ledger balance, 0): a debit empties lots without overdrawing them
//     and a credit repays the debt before forming a lot (ledger.LotCredit,
//     ledger.LotDebit).
//   - Expiry expires min(expired lots, spendable balance) per member, one
//     transaction each under the member lock with lots re-read, so it is
//     idempotent, never makes a balance negative, and replicas may run it
//     at once. Held points do not expire until their hold is voided.
//   - Reversals undo an earning exactly (points, status points of a year
//     not yet requalified, the tier upgrade it caused, promotion awards),
//     once per earning (idempotency key "reversal:<transaction id>").
//   - Requalification closes the previous status year once per member
//     (requalified_year): the new tier is the highest the year's status
//     points reach (or the new year's, if higher). Earning keeps the
//     previous year's status points when it rolls a member into a new year,
//     so the job may run after members have started earning again.
package loyalty

import (
	"context"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// TracerName is the instrumentation scope of the service's spans and metrics.
const TracerName = "github.com/godwit-dev/godwit/internal/loyalty"

// Ledger account ids (package ledger's).
const (
	AccountIssuance   = ledger.Issuance
	AccountRedemption = ledger.Redemption
	AccountExpiry     = ledger.Expiry
)

// MemberAccount is the ledger account of a member.
func MemberAccount(memberID string) string { return ledger.MemberAccount(memberID) }

// PartnerAccount is the clearing account of a transfer partner.
func PartnerAccount(partnerID string) string { return ledger.PartnerAccount(partnerID) }

// Transaction types recorded in the ledger.
const (
	TxEarn   = "earn"
	TxRedeem = "redeem"
	TxRefund = "refund"
)

// Config is what New needs.
type Config struct {
	DB             *db.DB
	Program        *program.Program
	Now            func() time.Time     // nil: time.Now
	TracerProvider trace.TracerProvider // nil: no-op
	MeterProvider  metric.MeterProvider // nil: no-op
	Logger         *slog.Logger         // nil: discard
	// HoldTTL is how long a points hold stays pending before a reaper may
	// void it (stored as the hold's expires_at). Default 30 minutes.
	HoldTTL time.Duration
	// OutstandingCacheTTL is how long the points_outstanding gauge reuses
	// its last query result. Default 5 seconds.
	OutstandingCacheTTL time.Duration
	// Fulfiller delivers redemptions. nil: the built-in provider, which
	// issues confirmation codes and obeys the fulfilment fault settings.
	Fulfiller Fulfiller
	// Partners sends transfers to partner programs. nil: the built-in
	// simulator, which obeys each partner's fault settings.
	Partners PartnerGateway
	// Faults holds the simulators' fault points; nil: a store of its own.
	Faults *faults.Store
	// Events records the program's business events (points earned, tier
	// changed…) in the transaction of the change. nil: no events.
	Events EventRecorder
}

// EventRecorder writes business events inside the caller's transaction, so
// an event exists exactly when its change commits (events.Recorder).
type EventRecorder interface {
	// Record writes evs in tx.
	Record(ctx context.Context, tx *db.Tx, evs ...events.Event) error
	// Statement returns the write Record would do, parameters from $1, for
	// folding into one of the ledger's one-statement writes.
	Statement(evs ...events.Event) (query string, args []any)
}

// Service is the loyalty service. It is safe for concurrent use.
type Service struct {
	db      *db.DB
	prog    *program.Program
	now     func() time.Time
	log     *slog.Logger
	tracer  trace.Tracer
	holdTTL time.Duration

	fulfiller Fulfiller
	partners  PartnerGateway
	faults    *faults.Store
	events    EventRecorder

	earned        metric.Int64Counter
	redeemed      metric.Int64Counter
	redeemLatency metric.Float64Histogram
	transferred   metric.Int64Counter
	expired       metric.Int64Counter
	vested        metric.Int64Counter

	outMu     sync.Mutex
	outTTL    time.Duration
	outAt     time.Time
	outValue  int64
	outLoaded bool
}

// New returns a Service. It registers the service's metrics with the meter provider.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil {
		return nil, errors.New("loyalty: DB is required")
	}
	if cfg.Program == nil {
		return nil, errors.New("loyalty: Program is required")
	}
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	if cfg.HoldTTL <= 0 {
		cfg.HoldTTL = 30 * time.Minute
	}
	if cfg.OutstandingCacheTTL <= 0 {
		cfg.OutstandingCacheTTL = 5 * time.Second
	}
	s := &Service{
		db:      cfg.DB,
		prog:    cfg.Program,
		now:     cfg.Now,
		log:     cfg.Logger,
		tracer:  cfg.TracerProvider.Tracer(TracerName),
		holdTTL: cfg.HoldTTL,
		outTTL:  cfg.OutstandingCacheTTL,
		faults:  newFaults(cfg),
		events:  cfg.Events,
	}
	s.fulfiller, s.partners = cfg.Fulfiller, cfg.Partners
	if s.fulfiller == nil {
		s.fulfiller = builtinFulfiller{s}
	}
	if s.partners == nil {
		s.partners = builtinPartners{s}
	}
	if cfg.MeterProvider != nil {
		if err := s.initMetrics(cfg.MeterProvider.Meter(TracerName)); err != nil {
			return nil, fmt.Errorf("loyalty: metrics: %w", err)
		}
	}
	return s, nil
}

func (s *Service) initMetrics(m metric.Meter) error {
	var err error
	s.earned, err = m.Int64Counter("loyalty.points_earned_total",
		metric.WithDescription("Points earned by members (base, tier bonus and promotions)"),
		metric.WithUnit("{point}"))
	if err != nil {
		return err
	}
	if s.redeemed, err = m.Int64Counter("loyalty.points_redeemed_total",
		metric.WithDescription("Points redeemed by members (captured redemptions)"),
		metric.WithUnit("{point}")); err != nil {
		return err
	}
	if s.redeemLatency, err = m.Float64Histogram("loyalty.redemption_latency_ms",
		metric.WithDescription("Time to process a points redemption, from request to capture or void"),
		metric.WithUnit("ms")); err != nil {
		return err
	}
	if s.transferred, err = m.Int64Counter("loyalty.points_transferred_total",
		metric.WithDescription("Points transferred out of member accounts (to partners or other members)"),
		metric.WithUnit("{point}")); err != nil {
		return err
	}
	if s.expired, err = m.Int64Counter("loyalty.points_expired_total",
		metric.WithDescription("Points expired by the expiry job"),
		metric.WithUnit("{point}")); err != nil {
		return err
	}
	if s.vested, err = vestedCounter(m); err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("loyalty.points_outstanding",
		metric.WithDescription("Points held by members, spendable plus pending holds: the program's liability"),
		metric.WithUnit("{point}"),
		metric.WithInt64Callback(func(ctx context.Context, o metric.Int64Observer) error {
			v, err := s.outstanding(ctx)
			if err != nil {
				// A failed scrape should not fail the others; the log says why.
				s.log.WarnContext(ctx, "loyalty: points_outstanding query failed", "error", err.Error())
				return nil
			}
			o.Observe(v)
			return nil
		}))
	return err
}

// outstanding returns the sum of member balances and holds, cached for
// outTTL so that frequent scrapes do not each scan the members table.
func (s *Service) outstanding(ctx context.Context) (int64, error) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	now := time.Now()
	if s.outLoaded && now.Sub(s.outAt) < s.outTTL {
		return s.outValue, nil
	}
	var v int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(SUM(balance + held), 0) FROM loyalty_members`).Scan(&v)
	if err != nil {
		return 0, err
	}
	s.outValue, s.outAt, s.outLoaded = v, now, true
	return v, nil
}

// Program returns the program the service runs.
func (s *Service) Program() *program.Program { return s.prog }

func newID() string { return ledger.NewID() }

// event returns a loyalty event about member memberID with ctx's trace
// context, or nothing when the service records no events.
func (s *Service) event(ctx context.Context, typ, memberID string, at time.Time, data any) ([]events.Event, error) {
	if s.events == nil {
		return nil, nil
	}
	e, err := events.New(ctx, typ, events.SourceLoyalty, memberID, at, data)
	if err != nil {
		return nil, err
	}
	return []events.Event{e}, nil
}

// emit records evs in tx (nothing when the service records no events).
func (s *Service) emit(ctx context.Context, tx *db.Tx, evs ...events.Event) error {
	if s.events == nil || len(evs) == 0 {
		return nil
	}
	return s.events.Record(ctx, tx, evs...)
}

// eventStmt is evs as a statement a ledger write carries (nil: none).
func (s *Service) eventStmt(evs ...events.Event) *ledger.Stmt {
	if s.events == nil || len(evs) == 0 {
		return nil
	}
	q, args := s.events.Statement(evs...)
	return &ledger.Stmt{SQL: q, Args: args}
}

// tierChange returns the tier.changed event of a move from one tier to
// another, or nothing when the tier did not change.
func (s *Service) tierChange(ctx context.Context, memberID, from, to, reason string, statusPoints int64, at time.Time) ([]events.Event, error) {
	if from == to || from == "" || to == "" {
		return nil, nil
	}
	dir := events.DirectionUp
	// A tier no longer in the program counts as above every tier (as
	// requalification counts leaving it).
	ft, known := s.prog.Tier(from)
	if tt, _ := s.prog.Tier(to); !known || tt.Rank < ft.Rank {
		dir = events.DirectionDown
	}
	return s.event(ctx, events.TierChanged, memberID, at, events.TierChangedData{
		MemberID: memberID, FromTier: from, ToTier: to, Direction: dir, Reason: reason, StatusPoints: statusPoints})
}

func actorOf(ctx context.Context) string { return auth.FromContext(ctx).Actor() }

func traceIDOf(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// internal wraps an unexpected failure (a driver error, a broken invariant)
// so that it reaches the client as a 500 without its message.
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errs.As(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return errs.New(errs.Internal, "%s failed", op).Wrap(fmt.Errorf("loyalty: %s: %w", op, err))
}

// retryOnDuplicate runs fn in a transaction and, when it fails on a unique
// constraint (a concurrent request with the same idempotency key committed
// first), once more: the second run sees the winner's row and replays it.
func (s *Service) retryOnDuplicate(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error {
	err := s.db.InTx(ctx, fn)
	if err != nil && db.IsUniqueViolation(err) {
		err = s.db.InTx(ctx, fn)
	}
	return err
}
