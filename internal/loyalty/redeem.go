package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
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

	opt, ok := s.prog.Option(optionID)
	if !ok {
		return RedemptionResult{}, errs.Coded(errs.NotFound, "unknown_redemption_option",
			"no redemption option with id %q; GET /v1/redemption-options lists them", optionID).With("field", "option_id")
	}
	span.SetAttributes(attribute.String("loyalty.redemption_type", opt.Type))
	if len(reference) > maxReferenceLen {
		return RedemptionResult{}, errs.Coded(errs.Unprocessable, "invalid_reference", "reference is at most %d bytes", maxReferenceLen)
	}

	now := s.now().UTC()
	var (
		m      Member
		cost   program.Cost
		hold   Hold
		replay *RedemptionResult
	)
	redemptionID := newID()
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		replay = nil
		var err error
		if m, err = lockMember(ctx, tx, memberID); err != nil {
			return err
		}
		if reference != "" {
			prior, err := redemptionByReference(ctx, tx, reference)
			switch {
			case err == nil:
				if prior.MemberID != memberID || prior.OptionID != optionID {
					return errs.Coded(errs.Conflict, "redemption_reference_conflict",
						"this idempotency key was used for another redemption")
				}
				if prior.Status == RedemptionPending {
					return errs.Coded(errs.Conflict, "redemption_in_progress",
						"a redemption with this idempotency key is still being fulfilled; retry shortly").With("redemption_id", prior.RedemptionID)
				}
				replay = &prior
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		span.SetAttributes(attribute.Int64("loyalty.current_balance", m.Balance))
		cost = s.redemptionCost(ctx, opt, m)
		if m.Balance < 0 {
			return negativeBalance(m)
		}
		if m.Balance < cost.Final {
			return insufficientPoints(m, cost.Final)
		}
		_, dspan := s.tracer.Start(ctx, "loyalty.debit_points")
		hold = Hold{MemberID: m.ID, Points: cost.Final, Reference: "redemption:" + redemptionID, Status: HoldPending}
		hold.ID, err = s.insertHold(ctx, tx, m.ID, cost.Final, hold.Reference, now)
		if err == nil {
			var ref sql.NullString
			if reference != "" {
				ref = sql.NullString{String: reference, Valid: true}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO loyalty_redemptions (id, member_id, option_id, option_type, list_points, discount, cost,
				hold_id, reference, status, trace_id, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)`,
				redemptionID, m.ID, opt.ID, opt.Type, cost.Points, cost.Discount, cost.Final, hold.ID, ref, traceIDOf(ctx), db.Micros(now))
		}
		dspan.SetAttributes(attribute.Bool("loyalty.debit_success", err == nil))
		if err == nil {
			dspan.SetAttributes(attribute.Int64("loyalty.new_balance", m.Balance-cost.Final))
		}
		endSpan(dspan, err)
		return err
	})
	if err != nil {
		switch errs.CodeOf(err) {
		case "insufficient_points", "negative_balance":
			span.SetAttributes(attribute.String("loyalty.redemption_result", resultInsufficientBalance),
				attribute.Int64("loyalty.points_short", cost.Final-m.Balance))
		case "redemption_in_progress", "redemption_reference_conflict", "member_not_found":
		default:
			span.SetAttributes(attribute.String("loyalty.redemption_result", resultDebitFailed))
		}
		return RedemptionResult{}, internal("redeem", err)
	}
	if replay != nil {
		span.SetAttributes(attribute.String("loyalty.redemption_result", resultSuccess), attribute.Bool("loyalty.replayed", true),
			attribute.Int64("loyalty.points_deducted", replay.PointsDeducted), attribute.Int64("loyalty.new_balance", replay.NewBalance))
		replay.Replayed = true
		return *replay, nil
	}

	confirmation, ferr := s.fulfil(ctx, FulfillmentRequest{RedemptionID: redemptionID, MemberID: m.ID, Option: opt, Points: cost.Final})

	// Settle even if the caller has gone: the hold must not wait for the reaper.
	settleCtx := context.WithoutCancel(ctx)
	res = RedemptionResult{
		Status: RedemptionSuccess, RedemptionID: redemptionID, MemberID: m.ID, OptionID: opt.ID, RedemptionType: opt.Type,
		ListPoints: cost.Points, Discount: cost.Discount, PointsDeducted: cost.Final, Confirmation: confirmation,
		TraceID: traceIDOf(ctx), CreatedAt: now,
	}
	settled := false
	err = s.db.InTx(settleCtx, func(ctx context.Context, tx *db.Tx) error {
		settled = false
		h, lm, err := lockHold(ctx, tx, hold.ID)
		if err != nil {
			return err
		}
		if ferr == nil && h.Status == HoldPending {
			txID, bal, err := captureHoldTx(ctx, tx, h, lm, TxRedeem, AccountRedemption,
				Breakdown{RedemptionID: redemptionID, OptionID: opt.ID, ListPoints: cost.Points, Discount: cost.Discount}, s.now().UTC())
			if err != nil {
				return err
			}
			res.TransactionID, res.NewBalance, settled = txID, bal, true
			_, err = tx.ExecContext(ctx, `UPDATE loyalty_redemptions SET status = 'success', confirmation = $2, transaction_id = $3,
				new_balance = $4, updated_at = $5 WHERE id = $1`, redemptionID, confirmation, txID, bal, db.Micros(s.now()))
			return err
		}
		failure := "hold expired before fulfilment finished"
		if ferr != nil {
			failure = ferr.Error()
		}
		if h.Status == HoldPending {
			if err := voidHoldTx(ctx, tx, h, s.now().UTC()); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_redemptions SET status = 'failed', failure = $2, updated_at = $3 WHERE id = $1`,
			redemptionID, truncate(failure, 500), db.Micros(s.now()))
		return err
	})
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.redemption_result", resultDebitFailed))
		return RedemptionResult{}, internal("redeem: settle", err)
	}
	s.recordLatency(ctx, start, opt.Type)
	if !settled {
		span.SetAttributes(attribute.String("loyalty.redemption_result", resultFulfillmentFailed), attribute.String("loyalty.redemption_id", redemptionID))
		return RedemptionResult{}, errs.Coded(errs.BadGateway, "fulfillment_failed",
			"the redemption could not be fulfilled; no points were taken").With("redemption_id", redemptionID)
	}
	if s.redeemed != nil {
		s.redeemed.Add(ctx, cost.Final, metric.WithAttributes(
			attribute.String("loyalty.redemption_type", opt.Type), attribute.String("loyalty.tier", s.memberTier(m).ID)))
	}
	span.SetAttributes(
		attribute.String("loyalty.redemption_result", resultSuccess),
		attribute.String("loyalty.redemption_id", redemptionID),
		attribute.Int64("loyalty.points_deducted", cost.Final),
		attribute.Int64("loyalty.new_balance", res.NewBalance),
	)
	return res, nil
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

func redemptionByReference(ctx context.Context, tx *db.Tx, reference string) (RedemptionResult, error) {
	var (
		r       RedemptionResult
		txID    sql.NullString
		created int64
	)
	err := tx.QueryRowContext(ctx, `SELECT id, member_id, option_id, option_type, list_points, discount, cost, status, confirmation,
		new_balance, transaction_id, trace_id, created_at
		FROM loyalty_redemptions WHERE reference = $1 AND status <> 'failed'`, reference).
		Scan(&r.RedemptionID, &r.MemberID, &r.OptionID, &r.RedemptionType, &r.ListPoints, &r.Discount, &r.PointsDeducted, &r.Status,
			&r.Confirmation, &r.NewBalance, &txID, &r.TraceID, &created)
	r.TransactionID, r.CreatedAt = txID.String, db.FromMicros(created)
	return r, err
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
