package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Redemption statuses.
const (
	RedemptionPending = "pending"
	RedemptionSuccess = "success"
	RedemptionFailed  = "failed"
)

// Values of the loyalty.redemption_result span attribute (the seed's, plus
// fulfillment_failed).
const (
	resultSuccess             = "success"
	resultInsufficientBalance = "insufficient_balance"
	resultDebitFailed         = "debit_failed"
	resultFulfillmentFailed   = "fulfillment_failed"
)

// RedemptionResult is the outcome of a successful redemption.
type RedemptionResult struct {
	Status         string    `json:"status"`
	RedemptionID   string    `json:"redemption_id"`
	MemberID       string    `json:"member_id"`
	OptionID       string    `json:"option_id"`
	RedemptionType string    `json:"redemption_type"`
	ListPoints     int64     `json:"list_points"`
	Discount       int64     `json:"discount"`
	PointsDeducted int64     `json:"points_deducted"`
	NewBalance     int64     `json:"new_balance"`
	Confirmation   string    `json:"confirmation"`
	TransactionID  string    `json:"transaction_id"`
	TraceID        string    `json:"trace_id"`
	CreatedAt      time.Time `json:"created_at"`
	// Replayed is true when reference named an earlier successful redemption.
	Replayed bool `json:"-"`
}

// memberTier is the tier a member's discounts and bonuses use: a tier
// removed from the program file falls back to what the status points reach.
func (s *Service) memberTier(m Member) program.Tier {
	if t, ok := s.prog.Tier(m.Tier); ok {
		return t
	}
	return s.prog.TierFor(m.StatusPoints)
}

// redemption is a redemption on its way: the option, the member as read
// when the hold was placed, the price and the hold.
type redemption struct {
	id, reference string
	opt           program.RedemptionOption
	member        Member
	cost          program.Cost
	hold          ledger.Hold
	now           time.Time
}

// checkRedemption checks what a redemption asks for without the database:
// the option must be in the catalogue (it is returned, also when the
// reference is refused) and the reference at most maxReferenceLen bytes.
func (s *Service) checkRedemption(optionID, reference string) (program.RedemptionOption, error) {
	opt, ok := s.prog.Option(optionID)
	if !ok {
		return program.RedemptionOption{}, errs.Coded(errs.NotFound, "unknown_redemption_option",
			"no redemption option with id %q; GET /v1/redemption-options lists them", optionID).With("field", "option_id")
	}
	if len(reference) > maxReferenceLen {
		return opt, errs.Coded(errs.Unprocessable, "invalid_reference", "reference is at most %d bytes", maxReferenceLen)
	}
	return opt, nil
}

// Redeem spends a member's points on a catalogue option in three steps:
// hold the discounted cost (one transaction under the member's row lock),
// ask the fulfiller to deliver, then capture the hold — or void it when
// fulfilment fails, so a failure never costs points.
//
// reference, when not empty, makes the call idempotent: a reference that
// names a successful redemption returns it (Replayed), one still pending is
// errs Conflict "redemption_in_progress", and a failed attempt frees its
// reference for a retry. Errors: unknown option (NotFound
// "unknown_redemption_option"), negative balance (Unprocessable
// "negative_balance"), too few points (Unprocessable "insufficient_points"
// with points_short and current_balance; nothing is held), fulfilment
// failure (BadGateway "fulfillment_failed"; balance unchanged).
func (s *Service) Redeem(ctx context.Context, memberID, optionID, reference string) (res RedemptionResult, err error) {
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, "loyalty.redeem_points", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", TxRedeem),
	))
	defer func() { endSpan(span, err) }()

	opt, err := s.checkRedemption(optionID, reference)
	if opt.ID != "" {
		span.SetAttributes(attribute.String("loyalty.redemption_type", opt.Type))
	}
	if err != nil {
		return RedemptionResult{}, err
	}
	r := &redemption{id: newID(), reference: reference, opt: opt, now: s.now().UTC()}
	var replay RedemptionResult
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) (err error) {
		replay, err = s.holdRedemption(ctx, tx, span, r, memberID)
		return err
	})
	if err != nil {
		span.SetAttributes(holdFailure(err, r)...)
		return RedemptionResult{}, internal("redeem", err)
	}
	if replay.Replayed {
		span.SetAttributes(attribute.String("loyalty.redemption_result", resultSuccess), attribute.Bool("loyalty.replayed", true),
			attribute.Int64("loyalty.points_deducted", replay.PointsDeducted), attribute.Int64("loyalty.new_balance", replay.NewBalance))
		return replay, nil
	}
	confirmation, ferr := s.fulfil(ctx, FulfillmentRequest{RedemptionID: r.id, MemberID: r.member.ID, Option: opt, Points: r.cost.Final})
	res, settled, err := s.settleDurably(ctx, r, confirmation, ferr)
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.redemption_result", resultDebitFailed))
		return RedemptionResult{}, internal("redeem: settle", err)
	}
	s.recordLatency(ctx, start, opt.Type)
	if !settled {
		span.SetAttributes(attribute.String("loyalty.redemption_result", resultFulfillmentFailed), attribute.String("loyalty.redemption_id", r.id))
		return RedemptionResult{}, errs.Coded(errs.BadGateway, "fulfillment_failed",
			"the redemption could not be fulfilled; no points were taken").With("redemption_id", r.id)
	}
	if s.redeemed != nil {
		s.redeemed.Add(ctx, r.cost.Final, metric.WithAttributes(
			attribute.String("loyalty.redemption_type", opt.Type), attribute.String("loyalty.tier", s.memberTier(r.member).ID)))
	}
	span.SetAttributes(
		attribute.String("loyalty.redemption_result", resultSuccess),
		attribute.String("loyalty.redemption_id", r.id),
		attribute.Int64("loyalty.points_deducted", r.cost.Final),
		attribute.Int64("loyalty.new_balance", res.NewBalance),
	)
	return res, nil
}

// holdFailure is the redemption span's attributes for a hold that failed.
func holdFailure(err error, r *redemption) []attribute.KeyValue {
	switch errs.CodeOf(err) {
	case "insufficient_points", "negative_balance":
		return []attribute.KeyValue{attribute.String("loyalty.redemption_result", resultInsufficientBalance),
			attribute.Int64("loyalty.points_short", r.cost.Final-r.member.Balance)}
	case "redemption_in_progress", "redemption_reference_conflict", CodeMemberNotFound:
		return nil
	}
	return []attribute.KeyValue{attribute.String("loyalty.redemption_result", resultDebitFailed)}
}

// holdRedemption is the redemption's first transaction. The member and any
// redemption with the reference are read without the member's lock, and
// the option priced; PlaceHold's guarded update then takes the lock, so on
// PostgreSQL the member's row is locked for that one statement and the
// commit. If the guard fails (the member spent or changed tier in between),
// it reads again under the lock and decides on that. A concurrent
// redemption with the same reference fails on the unique reference, and the
// retry replays it. An earlier redemption to replay is returned Replayed.
func (s *Service) holdRedemption(ctx context.Context, tx *db.Tx, span trace.Span, r *redemption, memberID string) (RedemptionResult, error) {
	priced := ""
	for lock := false; ; lock = true {
		m, prior, found, err := readRedeemer(ctx, tx, memberID, r.reference, lock)
		if err != nil {
			return RedemptionResult{}, err
		}
		if found {
			return replayRedemption(prior, memberID, r.opt.ID)
		}
		r.member = m
		span.SetAttributes(attribute.Int64("loyalty.current_balance", m.Balance))
		if tier := s.memberTier(m); tier.ID != priced {
			r.cost, priced = s.redemptionCost(ctx, r.opt, m), tier.ID
		}
		if m.Balance < 0 {
			return RedemptionResult{}, negativeBalance(m)
		}
		if m.Balance < r.cost.Final {
			return RedemptionResult{}, insufficientPoints(m, r.cost.Final)
		}
		debitStart := time.Now()
		bal, ok, err := s.placeRedemptionHold(ctx, tx, r)
		if err == nil && !ok {
			if !lock {
				continue
			}
			err = fmt.Errorf("loyalty: member %s cannot cover a %d-point hold it was checked for under its lock", memberID, r.cost.Final)
		}
		s.traceDebit(ctx, span, debitStart, r.cost.Final, bal, err)
		return RedemptionResult{}, err
	}
}

// replayRedemption answers a redemption whose reference was used before.
func replayRedemption(prior RedemptionResult, memberID, optionID string) (RedemptionResult, error) {
	if prior.MemberID != memberID || prior.OptionID != optionID {
		return RedemptionResult{}, errs.Coded(errs.Conflict, "redemption_reference_conflict",
			"this idempotency key was used for another redemption")
	}
	if prior.Status == RedemptionPending {
		// Not the key's final answer (httpx.RetryLater): a retry once the
		// redemption settles must replay its outcome, not this.
		return RedemptionResult{}, httpx.RetryLater(errs.Coded(errs.Conflict, "redemption_in_progress",
			"a redemption with this idempotency key is still being fulfilled; retry shortly").With("redemption_id", prior.RedemptionID), 1)
	}
	prior.Replayed = true
	return prior, nil
}

// placeRedemptionHold places the redemption's hold with its pending
// redemption row, guarded by the tier (and status points, for a tier priced
// by them) it was priced at.
func (s *Service) placeRedemptionHold(ctx context.Context, tx *db.Tx, r *redemption) (ledger.Points, bool, error) {
	m, cost := r.member, ledger.Points(r.cost.Final)
	r.hold = ledger.Hold{ID: newID(), MemberID: m.ID, Points: cost, Reference: "redemption:" + r.id, Status: HoldPending}
	guard := ledger.Stmt{SQL: "tier = $1::text", Args: []any{m.Tier}}
	if _, inProgram := s.prog.Tier(m.Tier); !inProgram {
		guard = ledger.Stmt{SQL: "tier = $1::text AND status_points = $2::bigint", Args: []any{m.Tier, m.StatusPoints}}
	}
	row := ledger.Stmt{SQL: `INSERT INTO loyalty_redemptions (id, member_id, option_id, option_type, list_points, discount, cost,
		hold_id, reference, status, trace_id, created_at, updated_at)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint, $6::bigint, $7::bigint, $8::text, $9::text, 'pending', $10::text, $11::bigint, $11::bigint
		WHERE $done`,
		Args: []any{r.id, m.ID, r.opt.ID, r.opt.Type, r.cost.Points, r.cost.Discount, r.cost.Final, r.hold.ID,
			sql.NullString{String: r.reference, Valid: r.reference != ""}, traceIDOf(ctx), db.Micros(r.now)}}
	return ledger.PlaceHold(ctx, tx, ledger.Placement{HoldID: r.hold.ID, MemberID: m.ID, Points: cost, Reference: r.hold.Reference,
		At: r.now, Expires: r.now.Add(s.holdTTL), Guard: guard, With: &row})
}

// traceDebit records the hold's placement as the loyalty.debit_points span,
// started at start.
func (s *Service) traceDebit(ctx context.Context, span trace.Span, start time.Time, cost int64, bal ledger.Points, err error) {
	_, dspan := s.tracer.Start(ctx, "loyalty.debit_points", trace.WithTimestamp(start))
	dspan.SetAttributes(attribute.Bool("loyalty.debit_success", err == nil))
	if err == nil {
		// The balance the hold was placed on, which the lock-free read may have missed.
		span.SetAttributes(attribute.Int64("loyalty.current_balance", int64(bal)+cost))
		dspan.SetAttributes(attribute.Int64("loyalty.new_balance", int64(bal)))
	}
	if db.IsUniqueViolation(err) {
		// A concurrent redemption with the same reference got there first
		// (the lock-free read could not see it): not a failure,
		// retryOnDuplicate runs again and answers from its row.
		dspan.End()
		return
	}
	endSpan(dspan, err)
}

// settleRedemption is the redemption's second transaction, run even if the
// caller has gone (the hold must not wait for the reaper): capture the hold
// with the redemption marked successful (one statement on PostgreSQL), or,
// when fulfilment failed or the hold expired meanwhile, void it and mark
// the redemption failed. It says whether the redemption succeeded. With
// recheck (a rerun, see settleDurably) a redemption already settled is
// answered as it stands.
func (s *Service) settleRedemption(ctx context.Context, r *redemption, confirmation string, ferr error, recheck bool) (RedemptionResult, bool, error) {
	res := RedemptionResult{
		Status: RedemptionSuccess, RedemptionID: r.id, MemberID: r.member.ID, OptionID: r.opt.ID, RedemptionType: r.opt.Type,
		ListPoints: r.cost.Points, Discount: r.cost.Discount, PointsDeducted: r.cost.Final, Confirmation: confirmation,
		TraceID: traceIDOf(ctx), CreatedAt: r.now,
	}
	settled := false
	err := s.updateMember(context.WithoutCancel(ctx), r.member.ID, func(ctx context.Context, tx *db.Tx, m Member) error {
		settled = false
		if recheck {
			// Settled already, by an attempt whose commit this process did
			// not hear about (settleDurably): answer from the row.
			var status string
			var newBalance sql.NullInt64
			var txID sql.NullString
			if err := tx.QueryRowContext(ctx, `SELECT status, new_balance, transaction_id FROM loyalty_redemptions WHERE id = $1`, r.id).
				Scan(&status, &newBalance, &txID); err != nil {
				return fmt.Errorf("loyalty: read redemption %s: %w", r.id, err)
			}
			switch status {
			case RedemptionSuccess:
				res.TransactionID, res.NewBalance, settled = txID.String, newBalance.Int64, true
				return nil
			case RedemptionFailed:
				return nil
			}
		}
		at := s.now().UTC()
		if ferr == nil {
			txID, bal, err := s.capture(ctx, tx, r.hold, m, TxRedeem, AccountRedemption,
				Breakdown{RedemptionID: r.id, OptionID: r.opt.ID, ListPoints: r.cost.Points, Discount: r.cost.Discount}, at,
				&settleRow{table: "loyalty_redemptions", id: r.id, status: RedemptionSuccess, confirmation: confirmation})
			if err == nil {
				res.TransactionID, res.NewBalance, settled = txID, bal, true
				return nil
			}
			if !errors.Is(err, ledger.ErrHoldNotPending) {
				return err
			}
		}
		failure := "hold expired before fulfilment finished"
		if ferr != nil {
			failure = ferr.Error()
		}
		return failRedemption(ctx, tx, r, failure, at)
	})
	return res, settled, err
}

// settleAttempts bounds settleDurably: about 3 s of backoff in all.
const settleAttempts = 7

// settleDurably runs settleRedemption until it is known to have happened.
// Only this process knows the fulfilment's outcome, so a settle lost with
// its database connection — before the commit (InTx reruns those), during it
// (whether it committed is then unknown), or while the server restarts — is
// run again, a few times with backoff: settleRedemption then first reads
// whether the redemption is already settled, so a commit that did happen is
// answered from its row, never applied twice (the first attempt skips that
// read: a round trip under the member's lock). If the database stays away, the
// redemption stays pending (a retry answers redemption_in_progress) until the
// hold reaper voids its hold after the hold TTL.
func (s *Service) settleDurably(ctx context.Context, r *redemption, confirmation string, ferr error) (RedemptionResult, bool, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, settled, err := s.settleRedemption(ctx, r, confirmation, ferr, attempt > 1)
		if err == nil || !db.IsUnavailable(err) || attempt == settleAttempts {
			return res, settled, err
		}
		s.log.WarnContext(ctx, "redemption settle lost its database connection; settling again", "redemption_id", r.id, "attempt", attempt)
		time.Sleep(wait)
		wait *= 2
	}
}

// failRedemption voids the redemption's hold if it is still pending and
// marks the redemption failed; the member's row is locked.
func failRedemption(ctx context.Context, tx *db.Tx, r *redemption, failure string, at time.Time) error {
	h, err := ledger.GetHold(ctx, tx, r.hold.ID)
	if err != nil {
		return err
	}
	if h.Status == HoldPending {
		if err := ledger.VoidHold(ctx, tx, h, at); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE loyalty_redemptions SET status = 'failed', failure = $2, updated_at = $3 WHERE id = $1`,
		r.id, truncate(failure, 500), db.Micros(at))
	return err
}

func (s *Service) recordLatency(ctx context.Context, start time.Time, redemptionType string) {
	if s.redeemLatency != nil {
		s.redeemLatency.Record(ctx, float64(time.Since(start).Microseconds())/1000,
			metric.WithAttributes(attribute.String("loyalty.redemption_type", redemptionType)))
	}
}

// redemptionCost prices an option for the member, under its own span.
func (s *Service) redemptionCost(ctx context.Context, opt program.RedemptionOption, m Member) program.Cost {
	_, span := s.tracer.Start(ctx, "loyalty.calculate_redemption_cost")
	defer span.End()
	tier := s.memberTier(m)
	c := program.RedemptionCost(opt, tier)
	span.SetAttributes(
		attribute.Int64("loyalty.points_needed", c.Points),
		// For display only; the arithmetic uses basis points.
		attribute.Float64("loyalty.redemption_discount", float64(c.DiscountBP)/10000),
		attribute.Int64("loyalty.final_cost", c.Final),
		attribute.String("loyalty.tier", tier.ID),
	)
	return c
}

// fulfil calls the fulfiller under its span, bounded so that a slow provider
// gives up well before the hold's TTL lets the reaper void it.
func (s *Service) fulfil(ctx context.Context, r FulfillmentRequest) (string, error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.fulfill_redemption", trace.WithAttributes(
		attribute.String("loyalty.redemption_id", r.RedemptionID),
		attribute.String("loyalty.option_id", r.Option.ID),
	))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.holdTTL/2)
	defer cancel()
	conf, err := s.fulfiller.Fulfill(ctx, r)
	if err == nil && conf == "" {
		err = errors.New("fulfiller returned no confirmation code")
	}
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.fulfillment_status", "failed"), attribute.String("loyalty.confirmation_code", ""))
		span.RecordError(err)
		span.SetStatus(codes.Error, "fulfilment failed")
		return "", err
	}
	span.SetAttributes(attribute.String("loyalty.fulfillment_status", "confirmed"), attribute.String("loyalty.confirmation_code", conf))
	return conf, nil
}

// readRedeemer reads a member and the redemption with reference that has
// not failed, if any, in one statement, locking the member's row if lock (on
// PostgreSQL; SQLite's write transaction holds its one write lock already).
// It says whether a redemption was found.
func readRedeemer(ctx context.Context, tx *db.Tx, memberID, reference string, lock bool) (Member, RedemptionResult, bool, error) {
	suffix := ""
	if lock {
		suffix = tx.Dialect().ForUpdateOf("m")
	}
	var (
		id, rmember, option, typ, status, conf, txID, traceID sql.NullString
		list, discount, cost, newBalance, created             sql.NullInt64
	)
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns("m")+`, r.id, r.member_id, r.option_id, r.option_type,
		r.list_points, r.discount, r.cost, r.status, r.confirmation, r.new_balance, r.transaction_id, r.trace_id, r.created_at
		FROM loyalty_members m LEFT JOIN loyalty_redemptions r ON r.reference = $2 AND r.status <> 'failed'
		WHERE m.id = $1`+suffix, memberID, reference),
		&id, &rmember, &option, &typ, &list, &discount, &cost, &status, &conf, &newBalance, &txID, &traceID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, RedemptionResult{}, false, memberNotFound(memberID)
	}
	if err != nil || !id.Valid {
		return m, RedemptionResult{}, false, err
	}
	return m, RedemptionResult{
		RedemptionID: id.String, MemberID: rmember.String, OptionID: option.String, RedemptionType: typ.String,
		ListPoints: list.Int64, Discount: discount.Int64, PointsDeducted: cost.Int64, Status: status.String,
		Confirmation: conf.String, NewBalance: newBalance.Int64, TransactionID: txID.String, TraceID: traceID.String,
		CreatedAt: db.FromMicros(created.Int64),
	}, true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// OptionCost is a catalogue option with its price for one member.
type OptionCost struct {
	program.RedemptionOption
	Cost program.Cost
}

// MemberOptionCosts prices the whole catalogue for a member's tier (one
// member read; the pricing is arithmetic).
func (s *Service) MemberOptionCosts(ctx context.Context, memberID string) ([]OptionCost, error) {
	m, err := s.GetMember(ctx, memberID)
	if err != nil {
		return nil, err
	}
	tier := s.memberTier(m)
	opts := s.prog.Options()
	out := make([]OptionCost, len(opts))
	for i, o := range opts {
		out[i] = OptionCost{RedemptionOption: o, Cost: program.RedemptionCost(o, tier)}
	}
	return out, nil
}
