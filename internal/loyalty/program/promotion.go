package program

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/money"
)

// Promotion is a time-limited bonus on base points. Promotions are created by
// admins and stored by the loyalty service; their rules live here so that the
// arithmetic is tested once. Exactly one of MultiplierBP and FixedBonus is set.
type Promotion struct {
	ID   string
	Name string
	// Start and End bound the window [Start, End): an activity that occurred
	// at Start qualifies, one at End does not, so back-to-back promotions
	// never overlap.
	Start, End time.Time
	// ActivityTypes the promotion applies to (at least one).
	ActivityTypes []string
	// Tiers it is limited to, by tier id; empty means every tier.
	Tiers []string
	// MultiplierBP multiplies base points (20000 = double points, so the
	// bonus is the extra 1× of base).
	MultiplierBP int64
	// FixedBonus is a flat bonus per qualifying activity, whatever its base.
	FixedBonus int64
	// CapPoints is the most bonus points one member may get from the
	// promotion (0 = no cap).
	CapPoints int64
	// CapTimes is how many of a member's activities may get the bonus
	// (0 = no cap).
	CapTimes int64
	// BudgetPoints is the most bonus points the promotion gives across all
	// members together (0 = no budget). The loyalty service counts what it
	// has given and stops applying the promotion when the budget is spent;
	// the activity that meets the budget gets only what is left.
	BudgetPoints int64
}

// Validate checks the promotion on its own: a name, an ordered window, known
// activity types, exactly one of multiplier and fixed bonus, and caps that
// are not negative. Use (*Program).ValidatePromotion to also check tier ids.
// Errors wrap ErrInvalidPromotion and name the field, as in
// "promotion: multiplier_bp: must be > 10000".
func (pr Promotion) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("promotion: %s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidPromotion))
	}
	if strings.TrimSpace(pr.Name) == "" {
		bad("name", "is required")
	}
	if pr.Start.IsZero() {
		bad("start", "is required")
	}
	if pr.End.IsZero() {
		bad("end", "is required")
	}
	if !pr.Start.IsZero() && !pr.End.IsZero() && !pr.End.After(pr.Start) {
		bad("end", "must be after start")
	}
	if len(pr.ActivityTypes) == 0 {
		bad("activity_types", "at least one is required")
	}
	for _, at := range pr.ActivityTypes {
		if !IsActivityType(at) {
			bad("activity_types", "%q must be one of %s", at, strings.Join(ActivityTypes(), ", "))
		}
	}
	switch {
	case pr.MultiplierBP != 0 && pr.FixedBonus != 0:
		bad("multiplier_bp", "set either multiplier_bp or fixed_bonus, not both")
	case pr.MultiplierBP == 0 && pr.FixedBonus == 0:
		bad("multiplier_bp", "one of multiplier_bp or fixed_bonus is required")
	case pr.MultiplierBP != 0 && (pr.MultiplierBP <= bpOne || pr.MultiplierBP > maxMultiplierBP):
		bad("multiplier_bp", "must be > %d (1×) and <= %d (100×)", bpOne, maxMultiplierBP)
	case pr.FixedBonus < 0 || pr.FixedBonus > MaxActivityPoints:
		bad("fixed_bonus", "must be between 1 and %d", MaxActivityPoints)
	}
	if pr.CapPoints < 0 {
		bad("cap_points", "must not be negative")
	}
	if pr.CapTimes < 0 {
		bad("cap_times", "must not be negative")
	}
	if pr.BudgetPoints < 0 {
		bad("budget_points", "must not be negative")
	}
	return errors.Join(errs...)
}

// ValidatePromotion is Promotion.Validate plus a check that every tier id is
// a tier of this program.
func (p *Program) ValidatePromotion(pr Promotion) error {
	errs := []error{pr.Validate()}
	for _, id := range pr.Tiers {
		if _, ok := p.Tier(id); !ok {
			errs = append(errs, fmt.Errorf("promotion: tiers: %q is not a tier of the program: %w", id, ErrInvalidPromotion))
		}
	}
	return errors.Join(errs...)
}

// Applies reports whether an activity of the type, by a member of the tier,
// occurring at the instant, qualifies: inside [Start, End), a listed activity
// type, and a listed tier if tiers are listed. The tier is the member's tier
// before the activity (the activity that crosses a threshold earns at the
// old tier).
func (pr Promotion) Applies(activityType, tier string, at time.Time) bool {
	if at.Before(pr.Start) || !at.Before(pr.End) {
		return false
	}
	if !slices.Contains(pr.ActivityTypes, activityType) {
		return false
	}
	return len(pr.Tiers) == 0 || slices.Contains(pr.Tiers, tier)
}

// Bonus is the promotion's bonus on base points before any cap: for a
// multiplier, floor(base × (MultiplierBP − 10000) / 10000); for a fixed bonus,
// FixedBonus, even when the base is 0 (a fixed bonus rewards the activity,
// not its size). A negative base earns no multiplier bonus. Like TierBonus it
// saturates rather than overflowing.
func (pr Promotion) Bonus(base int64) int64 {
	if pr.MultiplierBP == 0 {
		return max(pr.FixedBonus, 0)
	}
	if base <= 0 || pr.MultiplierBP <= bpOne {
		return 0
	}
	b, err := money.MulDivFloor(base, pr.MultiplierBP-bpOne, bpOne)
	if err != nil {
		return math.MaxInt64
	}
	return b
}

// CappedBonus returns how much of bonus may still be given to a member who
// has already received alreadyAwardedPoints from this promotion over
// alreadyAwardedTimes activities: 0 once CapTimes is reached, otherwise at
// most what is left under CapPoints. It is never negative. The caller must
// read the already-awarded figures in the same database transaction that
// books the bonus (under the member's lock), or concurrent activities could
// both pass the cap; and it should count an activity towards CapTimes only
// when the returned bonus is positive.
func (pr Promotion) CappedBonus(bonus, alreadyAwardedPoints, alreadyAwardedTimes int64) int64 {
	if bonus <= 0 {
		return 0
	}
	if pr.CapTimes > 0 && alreadyAwardedTimes >= pr.CapTimes {
		return 0
	}
	if pr.CapPoints > 0 {
		left := pr.CapPoints - max(alreadyAwardedPoints, 0)
		if left <= 0 {
			return 0
		}
		return min(bonus, left)
	}
	return bonus
}

// BudgetedBonus returns how much of bonus a promotion with a total budget may
// still give when spent points of it are already given: all of it while it
// fits, what is left of the budget for the activity that meets it (a partial
// last award), and 0 once the budget is spent. With no budget (0) it returns
// bonus. Like CappedBonus, the caller must read spent under a lock held
// until the award is booked.
func (pr Promotion) BudgetedBonus(bonus, spent int64) int64 {
	if bonus <= 0 {
		return 0
	}
	if pr.BudgetPoints <= 0 {
		return bonus
	}
	return max(min(bonus, pr.BudgetPoints-spent), 0)
}
