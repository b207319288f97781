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
		// The member and any redemption with the reference are read without
		// the member's lock, and the option priced; placeHold's guarded update
		// then takes the lock, so on PostgreSQL the member's row is locked for
		// that one statement and the commit. If the guard fails (the member
		// spent or changed tier in between), read again under the lock and
		// decide on that. A concurrent redemption with the same reference
		// fails on the unique reference, and the retry replays it.
		lock, priced := false, ""
		for {
			var (
				prior *RedemptionResult
				err   error
			)
			if m, prior, err = readRedeemer(ctx, tx, memberID, reference, lock); err != nil {
				return err
			}
			if prior != nil {
				if prior.MemberID != memberID || prior.OptionID != optionID {
					return errs.Coded(errs.Conflict, "redemption_reference_conflict",
						"this idempotency key was used for another redemption")
				}
				if prior.Status == RedemptionPending {
					return errs.Coded(errs.Conflict, "redemption_in_progress",
						"a redemption with this idempotency key is still being fulfilled; retry shortly").With("redemption_id", prior.RedemptionID)
				}
				replay = prior
				return nil
			}
			span.SetAttributes(attribute.Int64("loyalty.current_balance", m.Balance))
			if tier := s.memberTier(m); tier.ID != priced {
				cost, priced = s.redemptionCost(ctx, opt, m), tier.ID
			}
			if m.Balance < 0 {
				return negativeBalance(m)
			}
			if m.Balance < cost.Final {
				return insufficientPoints(m, cost.Final)
			}
			hold = Hold{ID: newID(), MemberID: m.ID, Points: cost.Final, Reference: "redemption:" + redemptionID, Status: HoldPending}
			_, inProgram := s.prog.Tier(m.Tier)
			debitStart := time.Now()
			bal, ok, err := placeHold(ctx, tx, holdPlacement{
				holdID: hold.ID, memberID: m.ID, points: cost.Final, reference: hold.Reference, now: now, expires: now.Add(s.holdTTL),
				guardTier: m.Tier, guardStatus: !inProgram, statusPoints: m.StatusPoints,
				redemption: &redemptionRow{id: redemptionID, optionID: opt.ID, optionType: opt.Type, listPoints: cost.Points,
					discount: cost.Discount, reference: sql.NullString{String: reference, Valid: reference != ""}, traceID: traceIDOf(ctx)},
			})
			if err == nil && !ok {
				if !lock {
					lock = true
					continue
				}
				err = fmt.Errorf("loyalty: member %s cannot cover a %d-point hold it was checked for under its lock", memberID, cost.Final)
			}
			_, dspan := s.tracer.Start(ctx, "loyalty.debit_points", trace.WithTimestamp(debitStart))
			dspan.SetAttributes(attribute.Bool("loyalty.debit_success", err == nil))
			if err == nil {
				// The balance the hold was placed on, which the lock-free read may have missed.
				span.SetAttributes(attribute.Int64("loyalty.current_balance", bal+cost.Final))
				dspan.SetAttributes(attribute.Int64("loyalty.new_balance", bal))
			}
			if db.IsUniqueViolation(err) {
				// A concurrent redemption with the same reference got there
				// first (the lock-free read could not see it): not a failure,
				// retryOnDuplicate runs again and answers from its row.
				dspan.End()
				return err
			}
			endSpan(dspan, err)
			return err
		}
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
		at := s.now().UTC()
		lm, err := lockMember(ctx, tx, m.ID)
		if err != nil {
			return err
		}
		if ferr == nil {
			// One statement on PostgreSQL, with the redemption marked successful.
			txID, bal, err := captureHoldTx(ctx, tx, hold, lm, TxRedeem, AccountRedemption,
				Breakdown{RedemptionID: redemptionID, OptionID: opt.ID, ListPoints: cost.Points, Discount: cost.Discount}, at,
				&settleRow{table: "loyalty_redemptions", id: redemptionID, status: RedemptionSuccess, confirmation: confirmation})
			if err == nil {
				res.TransactionID, res.NewBalance, settled = txID, bal, true
				return nil
			}
			if !errors.Is(err, errHoldNotPending) {
				return err
			}
		}
		failure := "hold expired before fulfilment finished"
		if ferr != nil {
			failure = ferr.Error()
		}
		h, err := scanHold(tx.QueryRowContext(ctx, `SELECT `+holdColumns+` FROM loyalty_holds WHERE id = $1`, hold.ID))
		if err != nil {
			return err
		}
		if h.Status == HoldPending {
			if err := voidHoldTx(ctx, tx, h, at); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_redemptions SET status = 'failed', failure = $2, updated_at = $3 WHERE id = $1`,
			redemptionID, truncate(failure, 500), db.Micros(at))
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

// readRedeemer reads a member and the redemption with reference that has
// not failed, if any, in one statement, locking the member's row if lock (on
// PostgreSQL; SQLite's write transaction holds its one write lock already).
func readRedeemer(ctx context.Context, tx *db.Tx, memberID, reference string, lock bool) (Member, *RedemptionResult, error) {
	suffix := ""
	if lock {
		suffix = tx.Dialect().ForUpdateOf("m")
	}
	var (
		id, rmember, option, typ, status, conf, txID, traceID sql.NullString
		list, discount, cost, newBalance, created             sql.NullInt64
	)
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumnsM+`, r.id, r.member_id, r.option_id, r.option_type,
		r.list_points, r.discount, r.cost, r.status, r.confirmation, r.new_balance, r.transaction_id, r.trace_id, r.created_at
		FROM loyalty_members m LEFT JOIN loyalty_redemptions r ON r.reference = $2 AND r.status <> 'failed'
		WHERE m.id = $1`+suffix, memberID, reference),
		&id, &rmember, &option, &typ, &list, &discount, &cost, &status, &conf, &newBalance, &txID, &traceID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, nil, memberNotFound(memberID)
	}
	if err != nil || !id.Valid {
		return m, nil, err
	}
	return m, &RedemptionResult{
		RedemptionID: id.String, MemberID: rmember.String, OptionID: option.String, RedemptionType: typ.String,
		ListPoints: list.Int64, Discount: discount.Int64, PointsDeducted: cost.Int64, Status: status.String,
		Confirmation: conf.String, NewBalance: newBalance.Int64, TransactionID: txID.String, TraceID: traceID.String,
		CreatedAt: db.FromMicros(created.Int64),
	}, nil
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
