package loyalty

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Activity is something a member did that may earn points: the program's
// activity (type and the type's details) plus where it came from.
type Activity struct {
	program.Activity
	// ExternalID identifies the activity at its source; a repeat of the same
	// (source, external id) returns the first result and credits nothing.
	ExternalID string
	// OccurredAt decides which promotions apply. Zero means now.
	OccurredAt time.Time
	// Nights (hotel) and OrderID (purchase) are recorded, not used for earning.
	Nights  int64
	OrderID string
	// EventDate is the activity's own date, when it has one: a hotel stay's
	// check-out date, a flight's date. A future one may make the points pend
	// until it (program.Vesting).
	EventDate time.Time
}

// AppliedPromotion is one promotion's share of an earning.
type AppliedPromotion struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Points int64  `json:"points"`
}

// EarnResult is the outcome of an earning, as stored and replayed.
type EarnResult struct {
	TransactionID      string             `json:"transaction_id"`
	MemberID           string             `json:"member_id"`
	ActivityType       string             `json:"activity_type"`
	ExternalID         string             `json:"external_id"`
	BasePoints         int64              `json:"base_points"`
	TierBonus          int64              `json:"tier_bonus"`
	PromoBonus         int64              `json:"promo_bonus"`
	Promotions         []AppliedPromotion `json:"promotions"`
	TotalPointsEarned  int64              `json:"total_points_earned"`
	StatusPointsEarned int64              `json:"status_points_earned"`
	// NewBalance is the member's spendable balance after the credit.
	NewBalance int64 `json:"new_balance"`
	// EarnedAtTier is the tier the bonus was computed at (the tier before
	// the activity); Tier is the tier after it, and NewTier is set when the
	// activity upgraded the member.
	EarnedAtTier string    `json:"earned_at_tier"`
	Tier         string    `json:"tier"`
	NewTier      string    `json:"new_tier,omitempty"`
	OccurredAt   time.Time `json:"occurred_at"`
	CreatedAt    time.Time `json:"created_at"`
	TraceID      string    `json:"trace_id"`
	// PendingPoints are the points that pend until VestsAt (all of
	// TotalPointsEarned, or 0 when they vested at once): they are not in
	// NewBalance, and StatusPointsEarned count towards the tier when they
	// vest (pending.go).
	PendingPoints int64      `json:"pending_points,omitempty"`
	VestsAt       *time.Time `json:"vests_at,omitempty"`
	// Replayed is true when this is the stored result of an earlier request
	// with the same source and external id.
	Replayed bool `json:"-"`
}

// Breakdown explains a ledger transaction; it is stored as JSON with the
// transaction and shown on the statement.
type Breakdown struct {
	ActivityType   string             `json:"activity_type,omitempty"`
	ExternalID     string             `json:"external_id,omitempty"`
	BasePoints     int64              `json:"base_points,omitempty"`
	EarningRate    string             `json:"earning_rate,omitempty"`
	Tier           string             `json:"tier,omitempty"`
	TierMultiplier string             `json:"tier_multiplier,omitempty"`
	TierBonus      int64              `json:"tier_bonus,omitempty"`
	PromoBonus     int64              `json:"promo_bonus,omitempty"`
	Promotions     []AppliedPromotion `json:"promotions,omitempty"`
	StatusPoints   int64              `json:"status_points,omitempty"`
	HoldID         string             `json:"hold_id,omitempty"`
	Reference      string             `json:"reference,omitempty"`
	Lots           []LotUse           `json:"lots,omitempty"`
	// Loyalty II: redemptions, transfers, expiry, reversals, adjustments.
	RedemptionID         string `json:"redemption_id,omitempty"`
	OptionID             string `json:"option_id,omitempty"`
	ListPoints           int64  `json:"list_points,omitempty"`
	Discount             int64  `json:"discount,omitempty"`
	TransferID           string `json:"transfer_id,omitempty"`
	PartnerID            string `json:"partner_id,omitempty"`
	PartnerUnits         int64  `json:"partner_units,omitempty"`
	ToMemberID           string `json:"to_member_id,omitempty"`
	FromMemberID         string `json:"from_member_id,omitempty"`
	Policy               string `json:"policy,omitempty"`
	ReversedTransaction  string `json:"reversed_transaction_id,omitempty"`
	StatusPointsReverted int64  `json:"status_points_reverted,omitempty"`
	Reason               string `json:"reason,omitempty"`
	// Pending points (pending.go): a vest names the earning it vested; a
	// reversal of a pending earning, the points it cancelled.
	VestedTransaction string `json:"vested_transaction_id,omitempty"`
	PendingCancelled  int64  `json:"pending_cancelled,omitempty"`
}

// Limits on activities.
const (
	maxExternalIDLen = 200
	// futureSkew tolerates clocks of activity sources running a little ahead.
	futureSkew = 5 * time.Minute
	// retroMonths is how far back an activity may be posted (retro-credit).
	retroMonths = 12
)

// EarnPurchase credits points for a shop order: activity type purchase,
// external id "order:"+orderID. A repeat returns the first result.
func (s *Service) EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (EarnResult, error) {
	if strings.TrimSpace(orderID) == "" {
		return EarnResult{}, errs.Coded(errs.Unprocessable, "invalid_order_id", "order id is required").With("field", "order_id")
	}
	return s.Earn(ctx, memberID, Activity{
		Activity:   program.Activity{Type: program.ActivityPurchase, Amount: amount},
		ExternalID: "order:" + orderID,
		OrderID:    orderID,
	})
}

// Earn credits a member for an activity in one database transaction: lock
// the member, compute base points, the tier bonus at the member's tier before
// the activity and the promotions' bonuses (caps checked against what the
// member already received, under the same lock), then book the transaction,
// its postings, a lot and the member's new balance, status points and tier.
func (s *Service) Earn(ctx context.Context, memberID string, a Activity) (res EarnResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.earn_points", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.activity_type", a.Type),
		attribute.String("loyalty.transaction_type", TxEarn),
	))
	defer func() { endSpan(span, err) }()

	now := s.now().UTC()
	base, err := s.validateActivity(&a, now)
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.result", "invalid_activity"))
		return EarnResult{}, err
	}
	source := activitySource(ctx, a.Type)
	hash := activityHash(memberID, a)

	var earnedTier string
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		res, earnedTier, err = s.earnTx(ctx, tx, earning{memberID: memberID, a: a, base: base, source: source, hash: hash, now: now})
		return err
	})
	if err != nil {
		if e, ok := errs.As(err); ok && e.Kind != errs.Internal {
			span.SetAttributes(attribute.String("loyalty.result", e.Code))
		}
		return EarnResult{}, internal("earn", err)
	}
	result := "credited"
	if res.Replayed {
		result = "replayed"
	} else if s.earned != nil {
		s.earned.Add(ctx, res.TotalPointsEarned, metric.WithAttributes(
			attribute.String("loyalty.activity_type", a.Type),
			attribute.String("loyalty.tier", earnedTier),
		))
	}
	span.SetAttributes(
		attribute.String("loyalty.result", result),
		attribute.String("loyalty.transaction_id", res.TransactionID),
		attribute.Int64("loyalty.total_points_earned", res.TotalPointsEarned),
		attribute.Int64("loyalty.base_points", res.BasePoints),
		attribute.Int64("loyalty.tier_bonus", res.TierBonus),
		attribute.Int64("loyalty.promo_bonus", res.PromoBonus),
		attribute.Int64("loyalty.new_balance", res.NewBalance),
	)
	if res.NewTier != "" {
		span.AddEvent("loyalty.tier_upgraded", trace.WithAttributes(
			attribute.String("loyalty.previous_tier", res.EarnedAtTier),
			attribute.String("loyalty.tier", res.NewTier),
		))
	}
	return res, nil
}

// validateActivity checks everything about an activity that does not need
// the database, fills in OccurredAt and returns its base points.
func (s *Service) validateActivity(a *Activity, now time.Time) (program.BaseResult, error) {
	if !program.IsActivityType(a.Type) {
		return program.BaseResult{}, errs.Coded(errs.Unprocessable, "unknown_activity_type",
			"type %q is not an activity type; use one of %s", a.Type, strings.Join(program.ActivityTypes(), ", ")).With("field", "type")
	}
	if strings.TrimSpace(a.ExternalID) == "" || len(a.ExternalID) > maxExternalIDLen || !utf8.ValidString(a.ExternalID) {
		return program.BaseResult{}, errs.Coded(errs.Unprocessable, "invalid_external_id",
			"external_id is required and at most %d bytes", maxExternalIDLen).With("field", "external_id")
	}
	if a.OccurredAt.IsZero() {
		a.OccurredAt = now
	}
	a.OccurredAt = a.OccurredAt.UTC()
	if a.OccurredAt.After(now.Add(futureSkew)) {
		return program.BaseResult{}, errs.Coded(errs.Unprocessable, "invalid_occurred_at",
			"occurred_at %s is in the future", a.OccurredAt.Format(time.RFC3339)).With("field", "occurred_at")
	}
	if a.OccurredAt.Before(program.AddMonths(now, -retroMonths)) {
		return program.BaseResult{}, errs.Coded(errs.Unprocessable, "invalid_occurred_at",
			"occurred_at %s is more than %d months ago", a.OccurredAt.Format(time.RFC3339), retroMonths).With("field", "occurred_at")
	}
	if a.Nights < 0 {
		return program.BaseResult{}, errs.Coded(errs.Unprocessable, "invalid_activity", "nights must not be negative").With("field", "hotel.nights")
	}
	base, err := s.prog.Base(a.Activity)
	if err != nil {
		return program.BaseResult{}, activityError(err)
	}
	return base, nil
}

// activityError turns the program's activity errors into client errors with
// stable codes.
func activityError(err error) error {
	code := "invalid_activity"
	switch {
	case errors.Is(err, program.ErrUnknownActivityType):
		code = "unknown_activity_type"
	case errors.Is(err, program.ErrUnknownFareClass):
		code = "unknown_fare_class"
	case errors.Is(err, program.ErrInvalidMerchantCategory):
		code = "invalid_merchant_category"
	case errors.Is(err, program.ErrCurrencyNotAccepted):
		code = "currency_not_accepted"
	case errors.Is(err, program.ErrInvalidActivity):
	default:
		return internal("earn", err)
	}
	return errs.Coded(errs.Unprocessable, code, "%s", err.Error())
}

// activitySource names the namespace of an activity's external id.
// Purchases always come from the shop, whichever path (HTTP, in-process
// checkout, a resumed saga with no caller) delivers them, so their ids
// ("order:<id>") are unique program-wide; other activities are unique per
// caller (the airline's, hotel's or card issuer's token).
func activitySource(ctx context.Context, activityType string) string {
	if activityType == program.ActivityPurchase {
		return "shop"
	}
	return actorOf(ctx)
}

// activityHash fingerprints what an activity claims, so that a reused
// external id with different details is a conflict rather than a replay.
// OccurredAt is left out: EarnPurchase stamps it with the clock.
func activityHash(memberID string, a Activity) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d%s\x00%s\x00%d\x00%s", memberID, a.Type, a.Amount.Amount, a.Amount.Currency, a.MerchantCategory, a.Nights, a.OrderID)
	if f := a.Flight; f != nil {
		fmt.Fprintf(h, "\x00%d\x00%s\x00%s\x00%s\x00%s", f.DistanceMiles, f.FareClass, f.Cabin, f.Origin, f.Destination)
	}
	if !a.EventDate.IsZero() { // left out when absent: earlier activities keep their hash
		fmt.Fprintf(h, "\x00date:%s", a.EventDate.UTC().Format(time.DateOnly))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// earning is an activity on its way to the books: who, what, its base
// points, where it came from and its fingerprint (activitySource,
// activityHash), credited at now.
type earning struct {
	memberID     string
	a            Activity
	base         program.BaseResult
	source, hash string
	now          time.Time
}

type promoRow struct {
	program.Promotion
	awardedPoints, awardedTimes int64
}

// earnTx is Earn's transaction, one span per step. It returns the tier the
// activity earned at.
func (s *Service) earnTx(ctx context.Context, tx *db.Tx, e earning) (EarnResult, string, error) {
	m, prior, err := s.loadEarner(ctx, tx, e)
	if err != nil || prior.Replayed {
		return prior, prior.EarnedAtTier, err
	}
	s.traceBase(ctx, e)
	tier, tierBonus := s.tierBonus(ctx, m, e.base)
	var (
		applied    []AppliedPromotion
		promoBonus int64
	)
	err = s.step(ctx, "loyalty.check_promotions", func(ctx context.Context, span trace.Span) (err error) {
		applied, promoBonus, err = s.applyPromotions(ctx, tx, e.memberID, e.a, tier.ID, e.base.BasePoints)
		if err == nil {
			span.SetAttributes(promotionAttributes(applied, promoBonus)...)
		}
		return err
	})
	if err != nil {
		return EarnResult{}, "", err
	}
	w := s.decideEarning(ctx, m, e, tier, tierBonus, applied, promoBonus)
	evs, err := s.earnEvents(ctx, w.res, e.a.OrderID, w.statusPoints)
	if err != nil {
		return EarnResult{}, "", err
	}
	w.events = s.eventStmt(evs...)
	err = s.step(ctx, "loyalty.credit_points", func(ctx context.Context, span trace.Span) error {
		if err := w.exec(ctx, tx); err != nil {
			return err
		}
		span.SetAttributes(attribute.Int64("loyalty.new_balance", w.res.NewBalance))
		if w.res.NewTier != "" {
			span.SetAttributes(attribute.String("loyalty.new_tier", w.res.NewTier))
		}
		return nil
	})
	return w.res, tier.ID, err
}

// loadEarner locks the member and looks for an earlier activity with the
// same id in one round trip. An earlier one is returned Replayed, or is
// errs Conflict "external_id_conflict" if it claimed something else.
func (s *Service) loadEarner(ctx context.Context, tx *db.Tx, e earning) (m Member, prior EarnResult, err error) {
	var priorHash, priorResult sql.NullString
	err = s.step(ctx, "loyalty.load_member", func(_ context.Context, span trace.Span) error {
		m, err = scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns("m")+`, a.request_hash, a.result
			FROM loyalty_members m
			LEFT JOIN loyalty_activities a ON a.source = $2 AND a.external_id = $3
			WHERE m.id = $1`+tx.Dialect().ForUpdateOf("m"), e.memberID, e.source, e.a.ExternalID), &priorHash, &priorResult)
		if errors.Is(err, sql.ErrNoRows) {
			return memberNotFound(e.memberID)
		}
		if err != nil {
			return err
		}
		s.rollStatusYear(&m, e.now)
		span.SetAttributes(
			attribute.String("loyalty.tier", m.Tier),
			attribute.Int64("loyalty.current_balance", m.Balance),
			attribute.Int64("loyalty.ytd_qualifying_points", m.StatusPoints),
		)
		return nil
	})
	if err != nil || !priorResult.Valid {
		return m, EarnResult{}, err
	}
	if priorHash.String != e.hash {
		return m, EarnResult{}, errs.Coded(errs.Conflict, "external_id_conflict",
			"external_id %q was already used for a different activity", e.a.ExternalID).With("external_id", e.a.ExternalID)
	}
	if err := json.Unmarshal([]byte(priorResult.String), &prior); err != nil {
		return m, EarnResult{}, fmt.Errorf("decode stored result: %w", err)
	}
	prior.Replayed = true
	return m, prior, nil
}

// traceBase records the base points' calculation, done before the
// transaction (validateActivity), as its span.
func (s *Service) traceBase(ctx context.Context, e earning) {
	_ = s.step(ctx, "loyalty.calculate_base", func(_ context.Context, span trace.Span) error {
		base, a := e.base, e.a
		span.SetAttributes(
			attribute.Int64("loyalty.base_points", base.BasePoints),
			attribute.String("loyalty.earning_rate", base.EarningRate),
		)
		if a.Type == program.ActivityFlight && a.Flight != nil {
			span.SetAttributes(
				attribute.Int64("loyalty.flight_miles", a.Flight.DistanceMiles),
				attribute.String("loyalty.fare_class", a.Flight.FareClass),
				attribute.String("loyalty.cabin", a.Flight.Cabin),
			)
		}
		if base.MinimumCreditApplied {
			span.SetAttributes(attribute.Bool("loyalty.minimum_credit_applied", true))
		}
		if base.MerchantCategory != "" {
			span.SetAttributes(attribute.String("loyalty.merchant_category", base.MerchantCategory))
		}
		return nil
	})
}

// tierBonus is the bonus the member's tier gives on base points, under its
// span. A tier removed from the program file earns at the tier the status
// points reach.
func (s *Service) tierBonus(ctx context.Context, m Member, base program.BaseResult) (tier program.Tier, bonus int64) {
	_ = s.step(ctx, "loyalty.apply_tier_bonus", func(_ context.Context, span trace.Span) error {
		tier = s.memberTier(m)
		bonus = program.TierBonus(base.BasePoints, tier)
		mult, _ := strconv.ParseFloat(program.FormatMultiplier(tier.MultiplierBP), 64) // display only
		span.SetAttributes(
			attribute.String("loyalty.tier", tier.ID),
			attribute.Float64("loyalty.tier_multiplier", mult),
			attribute.Int64("loyalty.tier_bonus_points", bonus),
		)
		return nil
	})
	return tier, bonus
}

func promotionAttributes(applied []AppliedPromotion, bonus int64) []attribute.KeyValue {
	ids := make([]string, len(applied))
	for i, p := range applied {
		ids[i] = p.ID
	}
	return []attribute.KeyValue{
		attribute.Int64("loyalty.promo_bonus_points", bonus),
		attribute.Bool("loyalty.promo_applied", bonus > 0),
		attribute.StringSlice("loyalty.promotions", ids),
	}
}

// decideEarning decides what an earning books: the result, the breakdown, the
// member's status points and tier. It is the rule, with no I/O.
func (s *Service) decideEarning(ctx context.Context, m Member, e earning, tier program.Tier, tierBonus int64, applied []AppliedPromotion, promoBonus int64) *earnWrite {
	total := e.base.BasePoints + tierBonus + promoBonus
	newTier := tier
	statusPoints := m.StatusPoints + e.base.StatusPoints
	vestsAt := s.prog.Vesting.VestsAt(e.a.Type, e.a.OccurredAt, e.a.EventDate, e.now)
	pending := total > 0 && !vestsAt.IsZero()
	if pending { // status points count when the points vest
		statusPoints = m.StatusPoints
	}
	if t := s.prog.TierFor(statusPoints); t.Rank > tier.Rank {
		newTier = t
	}
	res := EarnResult{
		TransactionID: newID(), MemberID: e.memberID, ActivityType: e.a.Type, ExternalID: e.a.ExternalID,
		BasePoints: e.base.BasePoints, TierBonus: tierBonus, PromoBonus: promoBonus, Promotions: applied,
		TotalPointsEarned: total, StatusPointsEarned: e.base.StatusPoints, NewBalance: m.Balance + total,
		EarnedAtTier: tier.ID, Tier: newTier.ID, OccurredAt: e.a.OccurredAt, CreatedAt: e.now, TraceID: traceIDOf(ctx),
	}
	if newTier.ID != tier.ID {
		res.NewTier = newTier.ID
	}
	if pending {
		res.PendingPoints, res.VestsAt, res.NewBalance = total, &vestsAt, m.Balance
	}
	bd := Breakdown{
		ActivityType: e.a.Type, ExternalID: e.a.ExternalID,
		BasePoints: e.base.BasePoints, EarningRate: e.base.EarningRate,
		Tier: tier.ID, TierMultiplier: program.FormatMultiplier(tier.MultiplierBP), TierBonus: tierBonus,
		PromoBonus: promoBonus, Promotions: applied, StatusPoints: e.base.StatusPoints,
	}
	return &earnWrite{
		res: res, member: m, source: e.source, hash: e.hash, breakdown: bd,
		actor: actorOf(ctx), statusPoints: statusPoints, lotID: newID(),
		expiresAt: s.prog.ExpiryFor(e.now), lastActivity: laterOf(m.LastActivityAt, e.now),
	}
}

// applyPromotions reads the promotions running at the activity's time with
// what the member already received from each, and returns the bonuses that
// apply after caps and budgets. It runs under the member's row lock, which
// every earning for the member takes, so two concurrent activities cannot
// both pass a cap; a budget is spent under the promotion's lock (spendBudget).
func (s *Service) applyPromotions(ctx context.Context, tx *db.Tx, memberID string, a Activity, tier string, base int64) ([]AppliedPromotion, int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+promotionColumnsP+`, COALESCE(w.points, 0), COALESCE(w.times, 0)
		FROM loyalty_promotions p
		LEFT JOIN loyalty_promotion_awards w ON w.promotion_id = p.id AND w.member_id = $1
		WHERE p.deleted_at IS NULL AND p.start_at <= $2 AND p.end_at > $2
		ORDER BY p.start_at, p.id`, memberID, db.Micros(a.OccurredAt))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var candidates []promoRow
	for rows.Next() {
		var r promoRow
		if err := scanPromotionInto(rows, &r.Promotion, &r.awardedPoints, &r.awardedTimes); err != nil {
			return nil, 0, err
		}
		if r.Applies(a.Type, tier, a.OccurredAt) {
			candidates = append(candidates, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	applied := []AppliedPromotion{}
	var total int64
	for _, r := range candidates {
		bonus, err := s.spendBudget(ctx, tx, r, r.CappedBonus(r.Bonus(base), r.awardedPoints, r.awardedTimes))
		if err != nil {
			return nil, 0, err
		}
		if bonus <= 0 {
			continue
		}
		applied = append(applied, AppliedPromotion{ID: r.ID, Name: r.Name, Points: bonus})
		total += bonus
	}
	return applied, total, nil
}

// earnWrite is everything an earning writes.
type earnWrite struct {
	res          EarnResult
	member       Member
	source, hash string
	breakdown    Breakdown
	actor        string
	statusPoints int64
	lotID        string
	expiresAt    time.Time
	lastActivity time.Time
	// events is the write of the earning's events, carried by the ledger's
	// credit (no round trip of its own); nil when none are recorded.
	events *ledger.Stmt
}

// earnEvents are the events of an earning: points.earned, and tier.changed
// when the activity upgraded the member.
func (s *Service) earnEvents(ctx context.Context, r EarnResult, orderID string, statusPoints int64) ([]events.Event, error) {
	if r.PendingPoints > 0 {
		return nil, nil // announced when the points vest (vestEvents)
	}
	evs, err := s.event(ctx, events.PointsEarned, r.MemberID, r.CreatedAt, events.PointsEarnedData{
		MemberID: r.MemberID, TransactionID: r.TransactionID, ActivityType: r.ActivityType, ExternalID: r.ExternalID,
		OrderID: orderID, Points: r.TotalPointsEarned, BasePoints: r.BasePoints, TierBonus: r.TierBonus,
		PromoBonus: r.PromoBonus, StatusPoints: r.StatusPointsEarned, Balance: r.NewBalance, Tier: r.Tier,
	})
	if err != nil || r.NewTier == "" {
		return evs, err
	}
	tc, err := s.tierChange(ctx, r.MemberID, r.EarnedAtTier, r.NewTier, events.ReasonQualified, statusPoints, r.CreatedAt)
	return append(evs, tc...), err
}

// exec writes the earning: the ledger's credit (transaction, postings, lot,
// balance) with the member's status points and tier, the activity with its
// stored result and the promotion awards — one statement on PostgreSQL.
func (w *earnWrite) exec(ctx context.Context, tx *db.Tx) error {
	bd, err := json.Marshal(w.breakdown)
	if err != nil {
		return err
	}
	stored, err := json.Marshal(w.res)
	if err != nil {
		return err
	}
	r := w.res
	with := []ledger.Stmt{{SQL: `INSERT INTO loyalty_activities (source, external_id, member_id, type, occurred_at, request_hash, transaction_id, result, created_at)
		VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $6::text, $7::text, $8::text, $9::bigint)`,
		Args: []any{w.source, r.ExternalID, r.MemberID, r.ActivityType, db.Micros(r.OccurredAt), w.hash, r.TransactionID, string(stored), db.Micros(r.CreatedAt)}}}
	if award := awardsStmt(r.MemberID, r.Promotions); award != nil {
		with = append(with, *award)
	}
	if w.events != nil {
		with = append(with, *w.events)
	}
	set := ledger.Stmt{SQL: `status_points = $1::bigint, status_year = $2::integer, tier = $3::text, last_activity_at = $4::bigint, updated_at = $5::bigint,
		prev_status_points = CASE WHEN status_year < $2::integer THEN status_points ELSE prev_status_points END,
		prev_status_year = CASE WHEN status_year < $2::integer THEN status_year ELSE prev_status_year END`,
		Args: []any{w.statusPoints, r.CreatedAt.Year(), r.Tier, db.Micros(w.lastActivity), db.Micros(r.CreatedAt)}}
	if r.PendingPoints > 0 {
		return w.execPending(ctx, tx, string(bd), set, with)
	}
	return ledger.PostCredit(ctx, tx, ledger.Credit{
		ID: r.TransactionID, Type: TxEarn, MemberID: r.MemberID, Key: "activity:" + w.source + ":" + r.ExternalID,
		Breakdown: string(bd), Actor: w.actor, TraceID: r.TraceID, At: r.CreatedAt,
		From: AccountIssuance, Points: ledger.Points(r.TotalPointsEarned), Before: balanceOf(w.member),
		LotID: w.lotID, LotExpires: w.expiresAt, MemberSet: set, With: with,
	})
}

// awardsStmt counts the promotions' awards to the member (one upsert for
// all), or is nil when none applied.
func awardsStmt(memberID string, applied []AppliedPromotion) *ledger.Stmt {
	if len(applied) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO loyalty_promotion_awards (promotion_id, member_id, points, times) VALUES `)
	args := []any{memberID}
	for i, p := range applied {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "($%d::text, $1::text, $%d::bigint, 1)", len(args)+1, len(args)+2)
		args = append(args, p.ID, p.Points)
	}
	b.WriteString(` ON CONFLICT (promotion_id, member_id) DO UPDATE SET points = loyalty_promotion_awards.points + excluded.points, times = loyalty_promotion_awards.times + excluded.times`)
	return &ledger.Stmt{SQL: b.String(), Args: args}
}
