package program

import (
	"fmt"
	"math"
	"slices"

	"github.com/godwit-dev/godwit/internal/money"
)

// Redemption option types.
const (
	OptionAwardFlight = "award_flight"
	OptionUpgrade     = "upgrade"
	OptionMerchandise = "merchandise"
)

// RedemptionOption is one entry of the redemption catalogue.
type RedemptionOption struct {
	// ID is stable across program edits and stored with redemptions:
	// "award-domestic-economy", "upgrade-segment", "merch-<sku>".
	ID string
	// Type is OptionAwardFlight, OptionUpgrade or OptionMerchandise.
	Type string
	Name string
	// Points is the list price before any tier discount.
	Points int64
	// Zone and Cabin describe an award flight; Cabin may name an upgrade's
	// target cabin.
	Zone  string
	Cabin string
	// SKU identifies merchandise for the fulfilment provider.
	SKU string
}

// Options returns the redemption catalogue in program-file order. The slice is
// the caller's to keep.
func (p *Program) Options() []RedemptionOption {
	return slices.Clone(p.RedemptionOptions)
}

// Option returns the catalogue entry with the id.
func (p *Program) Option(id string) (RedemptionOption, bool) {
	for _, o := range p.RedemptionOptions {
		if o.ID == id {
			return o, true
		}
	}
	return RedemptionOption{}, false
}

// Cost is the points price of a redemption for a member of some tier.
type Cost struct {
	// Points is the list price.
	Points int64
	// DiscountBP is the tier's discount in basis points (500 = 5%).
	DiscountBP int64
	// Discount is floor(Points × DiscountBP / 10000).
	Discount int64
	// Final is Points − Discount, what is debited.
	Final int64
}

// RedemptionCost prices an option for a member of the tier. The discount is
// floored, so a fractional point of discount is not given: 12,345 points at
// 5% is a discount of 617 (not 617.25 or 618) and a final cost of 11,728.
// Rounding is deliberately not in the member's favour, matching how the
// program rounds everything else (down to whole points of value given).
func RedemptionCost(o RedemptionOption, t Tier) Cost {
	c := Cost{Points: o.Points, DiscountBP: t.RedemptionDiscountBP}
	if o.Points > 0 && t.RedemptionDiscountBP > 0 {
		// Points <= MaxActivityPoints and DiscountBP <= 10000 for parsed
		// programs, so this cannot fail; a hand-built value that overflows
		// gets no discount rather than a wrong one.
		if d, err := money.MulDivFloor(o.Points, min(t.RedemptionDiscountBP, bpOne), bpOne); err == nil {
			c.Discount = d
		}
	}
	c.Final = c.Points - c.Discount
	return c
}

// RedemptionCost is the package function RedemptionCost, for callers holding
// a Program.
func (p *Program) RedemptionCost(o RedemptionOption, t Tier) Cost { return RedemptionCost(o, t) }

// Partner kinds.
const (
	PartnerAirline = "airline"
	PartnerHotel   = "hotel"
)

// Partner is a program members can transfer points to.
type Partner struct {
	ID   string
	Name string
	// Kind is PartnerAirline or PartnerHotel.
	Kind string
	// Ratio is the text from the program file ("3:1"): RatioPoints program
	// points become RatioUnits partner units.
	Ratio       string
	RatioPoints int64
	RatioUnits  int64
	// MinimumPoints is the smallest transfer, in program points.
	MinimumPoints int64
	// Increment: a transfer must be a whole multiple of it. It is a multiple
	// of RatioPoints, so every allowed transfer converts exactly.
	Increment int64
	// Simulate configures the built-in partner simulator: Fail means reject
	// every transfer, Delay slows each one.
	Simulate FaultSettings
}

// Partner returns the partner with the id.
func (p *Program) Partner(id string) (Partner, bool) {
	for _, pt := range p.Partners {
		if pt.ID == id {
			return pt, true
		}
	}
	return Partner{}, false
}

// PartnerUnits converts program points to the partner's units, after checking
// the transfer is at least MinimumPoints and a multiple of Increment. The
// conversion is exact (no rounding) because of how Increment is validated.
func (pt Partner) PartnerUnits(points int64) (int64, error) {
	if points <= 0 || points > MaxActivityPoints {
		return 0, fmt.Errorf("transfer to %s: %d points: %w", pt.ID, points, ErrInvalidPoints)
	}
	if points < pt.MinimumPoints {
		return 0, fmt.Errorf("transfer to %s: %d points, minimum is %d: %w", pt.ID, points, pt.MinimumPoints, ErrTransferBelowMinimum)
	}
	if pt.Increment <= 0 || pt.RatioPoints <= 0 {
		return 0, fmt.Errorf("transfer to %s: partner has no valid increment or ratio: %w", pt.ID, ErrInvalidProgram)
	}
	if points%pt.Increment != 0 {
		return 0, fmt.Errorf("transfer to %s: %d points is not a multiple of %d: %w", pt.ID, points, pt.Increment, ErrTransferIncrement)
	}
	units, err := money.MulDivFloor(points, pt.RatioUnits, pt.RatioPoints)
	if err != nil {
		return 0, fmt.Errorf("transfer to %s: %w: %w", pt.ID, ErrInvalidPoints, err)
	}
	return units, nil
}

// CheckMemberTransfer checks a member-to-member transfer of points by a sender
// who has already sent sentThisYear points this calendar year (UTC; the
// service sums the sender's outgoing transfers). The default minimum is 100
// points, small enough for family pooling of a last few points, and the
// default yearly limit 100,000 bounds the damage of a taken-over account.
func (p *Program) CheckMemberTransfer(points, sentThisYear int64) error {
	r := p.MemberTransfers
	if points <= 0 || points > MaxActivityPoints {
		return fmt.Errorf("member transfer: %d points: %w", points, ErrInvalidPoints)
	}
	if points < r.MinimumPoints {
		return fmt.Errorf("member transfer: %d points, minimum is %d: %w", points, r.MinimumPoints, ErrTransferBelowMinimum)
	}
	if left := r.YearlyLimit - max(sentThisYear, 0); points > left {
		return fmt.Errorf("member transfer: %d points, %d of the yearly %d left: %w",
			points, max(left, 0), r.YearlyLimit, ErrTransferLimitExceeded)
	}
	return nil
}

// PointsForAmount is the points price of an amount at checkout:
// ceil(amount × PointsPerUnit / unit size). It rounds up — the opposite of
// AmountForPoints — so that points never buy more than their value: at 150
// points per dollar one cent costs 2 points, not 1. At the default 100 points
// per USD both directions are exact (one point per cent). The amount must be
// in the program currency and not negative.
func (p *Program) PointsForAmount(m money.Money) (int64, error) {
	if err := m.ValidateNonNegative(); err != nil {
		return 0, fmt.Errorf("pay with points: %w", err)
	}
	if m.Currency != p.Currency {
		return 0, fmt.Errorf("pay with points: amount in %s, program currency is %s: %w", m.Currency, p.Currency, ErrCurrencyNotAccepted)
	}
	unit, _ := money.UnitSize(p.Currency)
	pts, err := money.MulDivCeil(m.Amount, p.PayWithPoints.PointsPerUnit, unit)
	if err != nil {
		return 0, fmt.Errorf("pay with points: %s: %w", m, err)
	}
	return pts, nil
}

// AmountForPoints is the value of points at checkout, in the program
// currency: floor(points × unit size / PointsPerUnit), so a fraction of a
// minor unit is never paid out. Non-positive points are worth nothing. The
// result saturates at math.MaxInt64 minor units rather than overflowing,
// which no realistic balance approaches.
func (p *Program) AmountForPoints(points int64) money.Money {
	m := money.Money{Currency: p.Currency}
	if points <= 0 || p.PayWithPoints.PointsPerUnit <= 0 {
		return m
	}
	unit, _ := money.UnitSize(p.Currency)
	a, err := money.MulDivFloor(points, unit, p.PayWithPoints.PointsPerUnit)
	if err != nil {
		a = math.MaxInt64
	}
	m.Amount = a
	return m
}
