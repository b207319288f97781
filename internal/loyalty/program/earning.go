package program

import (
	"fmt"
	"math"
	"strconv"

	"github.com/godwit-dev/godwit/internal/money"
)

// Activity types: the things members earn points for.
const (
	ActivityFlight    = "flight"
	ActivityHotel     = "hotel"
	ActivityCardSpend = "card_spend"
	// ActivityPurchase is a purchase from the shop's checkout.
	ActivityPurchase = "purchase"
)

// ActivityTypes lists the activity types in a stable order.
func ActivityTypes() []string {
	return []string{ActivityFlight, ActivityHotel, ActivityCardSpend, ActivityPurchase}
}

// IsActivityType reports whether s is one of ActivityTypes.
func IsActivityType(s string) bool {
	switch s {
	case ActivityFlight, ActivityHotel, ActivityCardSpend, ActivityPurchase:
		return true
	}
	return false
}

// Earning holds the base-point rule of each activity type.
type Earning struct {
	Flight    FlightRule
	Hotel     AmountRule
	CardSpend CardSpendRule
	Purchase  AmountRule
}

// FlightRule earns by distance flown times the fare class's percentage.
type FlightRule struct {
	// FareClassBP maps a one-letter fare class to its earning percentage in
	// basis points (10000 = 100% of the distance).
	FareClassBP map[string]int64
	// MinimumCredit is the least a fare earning at least MinimumCreditFromBP
	// earns (0 = no minimum). Short full-fare flights earn this, not the
	// distance; discount fares do not get it.
	MinimumCredit       int64
	MinimumCreditFromBP int64
	// StatusPoints says whether base points also count as status points.
	StatusPoints bool
}

// AmountRule earns a whole number of points per major unit of the program
// currency (per dollar, not per cent).
type AmountRule struct {
	PointsPerUnit int64
	// StatusPoints says whether base points also count as status points.
	StatusPoints bool
}

// CardSpendRule earns PointsPerUnit per unit of card spend, or the rate of the
// first category whose ranges hold the merchant category code.
type CardSpendRule struct {
	PointsPerUnit int64
	StatusPoints  bool
	Categories    []MerchantCategoryRule
}

// MerchantCategoryRule is a named set of merchant category codes with their
// own earning rate ("airlines": 3000–3299 and 4511 at 2 per unit).
type MerchantCategoryRule struct {
	Name          string
	Ranges        []MCCRange
	PointsPerUnit int64
}

// MCCRange is an inclusive range of merchant category codes.
type MCCRange struct {
	From, To int
}

// String formats the range as in the program file: "4511" or "3000-3299".
func (r MCCRange) String() string {
	if r.From == r.To {
		return fmt.Sprintf("%04d", r.From)
	}
	return fmt.Sprintf("%04d-%04d", r.From, r.To)
}

// Contains reports whether code is in the range.
func (r MCCRange) Contains(code int) bool { return code >= r.From && code <= r.To }

// Activity is something a member did that may earn points. Only the fields of
// its Type are read: Flight for flights, Amount for hotel, card_spend and
// purchase, and MerchantCategory for card_spend.
type Activity struct {
	Type   string
	Flight *Flight
	// Amount is the spend in minor units; it must be in the program currency.
	Amount money.Money
	// MerchantCategory is the card transaction's 4-digit merchant category
	// code (ISO 18245), as a string because "0742" has a leading zero.
	MerchantCategory string
}

// Flight is a flown segment.
type Flight struct {
	DistanceMiles int64
	// FareClass is the one-letter booking class ("Y"); it sets the earning
	// percentage. Matching is exact: "y" is not "Y".
	FareClass string
	// Cabin, Origin and Destination are recorded, not used for earning.
	Cabin, Origin, Destination string
}

// BaseResult is what an activity earns before tier and promotion bonuses.
type BaseResult struct {
	// BasePoints are the spendable base points.
	BasePoints int64
	// StatusPoints are the tier-qualifying points (BasePoints or 0, per the
	// rule's status_points setting).
	StatusPoints int64
	// EarningRate is the applied rate for humans and span attributes: "125%"
	// for a flight (of distance), "10/USD" for spend.
	EarningRate string
	// FareEarningBP is a flight's fare-class percentage in basis points.
	FareEarningBP int64
	// MinimumCreditApplied is true when a flight earned the minimum credit
	// rather than its distance-based points.
	MinimumCreditApplied bool
	// MerchantCategory is the name of the card_spend category rule that
	// matched ("airlines"), or "" for the general rate.
	MerchantCategory string
}

// Base computes the base and status points of an activity. Every result is
// floored to whole points. Errors wrap ErrInvalidActivity (and a more
// specific sentinel where there is one); money errors are wrapped too.
func (p *Program) Base(a Activity) (BaseResult, error) {
	var (
		res BaseResult
		err error
	)
	switch a.Type {
	case ActivityFlight:
		res, err = p.flightBase(a.Flight)
	case ActivityHotel:
		res, err = p.spendBase("hotel", a.Amount, p.Earning.Hotel.PointsPerUnit, p.Earning.Hotel.StatusPoints)
	case ActivityPurchase:
		res, err = p.spendBase("purchase", a.Amount, p.Earning.Purchase.PointsPerUnit, p.Earning.Purchase.StatusPoints)
	case ActivityCardSpend:
		res, err = p.cardBase(a)
	default:
		return BaseResult{}, fmt.Errorf("earn: %q: %w", a.Type, ErrUnknownActivityType)
	}
	if err != nil {
		return BaseResult{}, fmt.Errorf("earn %s: %w", a.Type, err)
	}
	if res.BasePoints > MaxActivityPoints {
		return BaseResult{}, fmt.Errorf("earn %s: %d points is more than one activity may earn (%d): %w",
			a.Type, res.BasePoints, MaxActivityPoints, ErrInvalidActivity)
	}
	return res, nil
}

func (p *Program) flightBase(f *Flight) (BaseResult, error) {
	rule := p.Earning.Flight
	if f == nil {
		return BaseResult{}, fmt.Errorf("flight details are required: %w", ErrInvalidActivity)
	}
	if f.DistanceMiles <= 0 {
		return BaseResult{}, fmt.Errorf("distance_miles %d must be positive: %w", f.DistanceMiles, ErrInvalidActivity)
	}
	bp, ok := rule.FareClassBP[f.FareClass]
	if !ok {
		return BaseResult{}, fmt.Errorf("fare class %q: %w", f.FareClass, ErrUnknownFareClass)
	}
	base, err := money.MulDivFloor(f.DistanceMiles, bp, bpOne)
	if err != nil {
		return BaseResult{}, fmt.Errorf("distance_miles %d: %w: %w", f.DistanceMiles, ErrInvalidActivity, err)
	}
	res := BaseResult{EarningRate: FormatBP(bp), FareEarningBP: bp}
	if rule.MinimumCredit > 0 && bp >= rule.MinimumCreditFromBP && base < rule.MinimumCredit {
		base = rule.MinimumCredit
		res.MinimumCreditApplied = true
	}
	res.BasePoints = base
	if rule.StatusPoints {
		res.StatusPoints = base
	}
	return res, nil
}

// spendBase earns floor(amount × rate / unit size): 10 points per dollar on
// $12.34 is 123 points, and the 0.4 is not carried anywhere.
func (p *Program) spendBase(what string, amount money.Money, rate int64, status bool) (BaseResult, error) {
	if err := amount.Validate(); err != nil {
		return BaseResult{}, fmt.Errorf("%s amount: %w: %w", what, ErrInvalidActivity, err)
	}
	if amount.Currency != p.Currency {
		return BaseResult{}, fmt.Errorf("%s amount in %s, program currency is %s: %w",
			what, amount.Currency, p.Currency, ErrCurrencyNotAccepted)
	}
	if err := amount.ValidatePositive(); err != nil {
		return BaseResult{}, fmt.Errorf("%s amount: %w: %w", what, ErrInvalidActivity, err)
	}
	unit, _ := money.UnitSize(p.Currency)
	pts, err := money.MulDivFloor(amount.Amount, rate, unit)
	if err != nil {
		return BaseResult{}, fmt.Errorf("%s amount %s: %w: %w", what, amount, ErrInvalidActivity, err)
	}
	res := BaseResult{BasePoints: pts, EarningRate: strconv.FormatInt(rate, 10) + "/" + p.Currency}
	if status {
		res.StatusPoints = pts
	}
	return res, nil
}

func (p *Program) cardBase(a Activity) (BaseResult, error) {
	rule := p.Earning.CardSpend
	code, err := parseMCC(a.MerchantCategory)
	if err != nil {
		return BaseResult{}, fmt.Errorf("merchant_category %q: must be 4 digits: %w", a.MerchantCategory, ErrInvalidMerchantCategory)
	}
	rate, category := rule.PointsPerUnit, ""
	for _, cat := range rule.Categories {
		if cat.matches(code) {
			rate, category = cat.PointsPerUnit, cat.Name
			break
		}
	}
	res, err := p.spendBase("card_spend", a.Amount, rate, rule.StatusPoints)
	if err != nil {
		return BaseResult{}, err
	}
	res.MerchantCategory = category
	return res, nil
}

func (c MerchantCategoryRule) matches(code int) bool {
	for _, r := range c.Ranges {
		if r.Contains(code) {
			return true
		}
	}
	return false
}

// TierBonus returns the tier's bonus on base points: floor(base ×
// (multiplier − 1)), computed as floor(base × (MultiplierBP − 10000) / 10000)
// in exact integer arithmetic. A non-positive base earns no bonus. The result
// cannot overflow for base up to MaxActivityPoints; beyond that it saturates
// at math.MaxInt64 rather than wrapping.
func TierBonus(base int64, t Tier) int64 {
	if base <= 0 || t.MultiplierBP <= bpOne {
		return 0
	}
	b, err := money.MulDivFloor(base, t.MultiplierBP-bpOne, bpOne)
	if err != nil {
		return math.MaxInt64
	}
	return b
}

// TierBonus is the package function TierBonus, for callers holding a Program.
func (p *Program) TierBonus(base int64, t Tier) int64 { return TierBonus(base, t) }
