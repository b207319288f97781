package program_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

var (
	promoStart = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	promoEnd   = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
)

func doublePoints() program.Promotion {
	return program.Promotion{
		ID: "p1", Name: "Summer double points",
		Start: promoStart, End: promoEnd,
		ActivityTypes: []string{program.ActivityFlight, program.ActivityHotel},
		MultiplierBP:  20000,
	}
}

func TestPromotionApplies(t *testing.T) {
	elite := doublePoints()
	elite.Tiers = []string{"gold", "platinum"}
	tests := []struct {
		name         string
		promo        program.Promotion
		activityType string
		tier         string
		at           time.Time
		want         bool
	}{
		{"at start", doublePoints(), "flight", "blue", promoStart, true},
		{"just before start", doublePoints(), "flight", "blue", promoStart.Add(-time.Nanosecond), false},
		{"just before end", doublePoints(), "flight", "blue", promoEnd.Add(-time.Nanosecond), true},
		{"at end", doublePoints(), "flight", "blue", promoEnd, false},
		{"start in another zone", doublePoints(), "hotel", "blue", promoStart.In(time.FixedZone("EST", -5*3600)), true},
		{"other activity type", doublePoints(), "card_spend", "blue", promoStart, false},
		{"no tier filter means all", doublePoints(), "hotel", "platinum", promoStart, true},
		{"tier listed", elite, "flight", "gold", promoStart, true},
		{"tier not listed", elite, "flight", "silver", promoStart, false},
		{"tier listed, outside window", elite, "flight", "gold", promoEnd, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.promo.Applies(tt.activityType, tt.tier, tt.at); got != tt.want {
				t.Errorf("Applies(%s, %s, %s) = %v, want %v", tt.activityType, tt.tier, tt.at, got, tt.want)
			}
		})
	}
}

func TestPromotionBonus(t *testing.T) {
	mult := func(bp int64) program.Promotion { p := doublePoints(); p.MultiplierBP = bp; return p }
	fixed := func(n int64) program.Promotion { p := doublePoints(); p.MultiplierBP = 0; p.FixedBonus = n; return p }
	tests := []struct {
		name  string
		promo program.Promotion
		base  int64
		want  int64
	}{
		{"double", mult(20000), 1001, 1001},
		{"one and a half floors", mult(15000), 1001, 500},
		{"triple", mult(30000), 7, 14},
		{"1.1x floors small base", mult(11000), 9, 0},
		{"1.15x is exact", mult(11500), 100, 15},
		{"multiplier on zero base", mult(20000), 0, 0},
		{"multiplier on negative base", mult(20000), -50, 0},
		{"fixed ignores base", fixed(1000), 12345, 1000},
		{"fixed on zero base", fixed(1000), 0, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.promo.Bonus(tt.base); got != tt.want {
				t.Errorf("Bonus(%d) = %d, want %d", tt.base, got, tt.want)
			}
		})
	}
}

func TestPromotionCappedBonus(t *testing.T) {
	capped := func(pts, times int64) program.Promotion {
		p := doublePoints()
		p.CapPoints, p.CapTimes = pts, times
		return p
	}
	tests := []struct {
		name                      string
		promo                     program.Promotion
		bonus, awardedPts, awardN int64
		want                      int64
	}{
		{"no caps", capped(0, 0), 500, 1_000_000, 1000, 500},
		{"points cap not reached", capped(1000, 0), 500, 0, 0, 500},
		{"points cap reached exactly by this one", capped(1000, 0), 500, 500, 1, 500},
		{"points cap cuts", capped(1000, 0), 500, 800, 2, 200},
		{"points cap reached", capped(1000, 0), 500, 1000, 2, 0},
		{"points cap overshot never negative", capped(1000, 0), 500, 1200, 3, 0},
		{"times cap not reached", capped(0, 3), 500, 1000, 2, 500},
		{"times cap reached", capped(0, 3), 500, 1500, 3, 0},
		{"times cap overshot", capped(0, 3), 500, 1500, 4, 0},
		{"both caps, points binds", capped(1000, 5), 500, 900, 2, 100},
		{"both caps, times binds", capped(1000, 2), 100, 200, 2, 0},
		{"zero bonus", capped(1000, 0), 0, 0, 0, 0},
		{"negative bonus", capped(0, 0), -5, 0, 0, 0},
		{"negative awarded treated as none", capped(1000, 0), 500, -300, 0, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.promo.CappedBonus(tt.bonus, tt.awardedPts, tt.awardN); got != tt.want {
				t.Errorf("CappedBonus(%d, %d, %d) = %d, want %d", tt.bonus, tt.awardedPts, tt.awardN, got, tt.want)
			}
		})
	}
}

func TestPromotionBudgetedBonus(t *testing.T) {
	budget := func(n int64) program.Promotion { p := doublePoints(); p.BudgetPoints = n; return p }
	tests := []struct {
		name               string
		promo              program.Promotion
		bonus, spent, want int64
	}{
		{"no budget", budget(0), 500, 1_000_000, 500},
		{"fits", budget(1000), 500, 0, 500},
		{"meets the budget exactly", budget(1000), 500, 500, 500},
		{"partial last award", budget(1000), 500, 800, 200},
		{"spent", budget(1000), 500, 1000, 0},
		{"overspent never negative", budget(1000), 500, 1200, 0},
		{"zero bonus", budget(1000), 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.promo.BudgetedBonus(tt.bonus, tt.spent); got != tt.want {
				t.Errorf("BudgetedBonus(%d, %d) = %d, want %d", tt.bonus, tt.spent, got, tt.want)
			}
		})
	}
}

func TestPromotionValidate(t *testing.T) {
	edit := func(f func(*program.Promotion)) program.Promotion { p := doublePoints(); f(&p); return p }
	tests := []struct {
		name  string
		promo program.Promotion
		want  string // "" for valid
	}{
		{"multiplier", doublePoints(), ""},
		{"fixed", edit(func(p *program.Promotion) { p.MultiplierBP = 0; p.FixedBonus = 500 }), ""},
		{"capped with tiers", edit(func(p *program.Promotion) { p.Tiers = []string{"gold"}; p.CapPoints = 10; p.CapTimes = 1 }), ""},
		{"both kinds", edit(func(p *program.Promotion) { p.FixedBonus = 500 }), "multiplier_bp: set either multiplier_bp or fixed_bonus, not both"},
		{"neither kind", edit(func(p *program.Promotion) { p.MultiplierBP = 0 }), "multiplier_bp: one of multiplier_bp or fixed_bonus is required"},
		{"multiplier of one", edit(func(p *program.Promotion) { p.MultiplierBP = 10000 }), "multiplier_bp: must be > 10000"},
		{"multiplier too big", edit(func(p *program.Promotion) { p.MultiplierBP = 1_000_001 }), "multiplier_bp: must be > 10000"},
		{"negative fixed", edit(func(p *program.Promotion) { p.MultiplierBP = 0; p.FixedBonus = -1 }), "fixed_bonus: must be between 1 and"},
		{"empty window", edit(func(p *program.Promotion) { p.End = p.Start }), "end: must be after start"},
		{"reversed window", edit(func(p *program.Promotion) { p.Start, p.End = p.End, p.Start }), "end: must be after start"},
		{"no start", edit(func(p *program.Promotion) { p.Start = time.Time{} }), "start: is required"},
		{"no activity types", edit(func(p *program.Promotion) { p.ActivityTypes = nil }), "activity_types: at least one is required"},
		{"unknown activity type", edit(func(p *program.Promotion) { p.ActivityTypes = []string{"flight", "lounge"} }), `activity_types: "lounge" must be one of`},
		{"no name", edit(func(p *program.Promotion) { p.Name = " " }), "name: is required"},
		{"negative caps", edit(func(p *program.Promotion) { p.CapPoints = -1; p.CapTimes = -1 }), "cap_times: must not be negative"},
		{"budget", edit(func(p *program.Promotion) { p.BudgetPoints = 100_000 }), ""},
		{"negative budget", edit(func(p *program.Promotion) { p.BudgetPoints = -1 }), "budget_points: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.promo.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, program.ErrInvalidPromotion) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate error = %v, want ErrInvalidPromotion containing %q", err, tt.want)
			}
		})
	}
}

func TestProgramValidatePromotion(t *testing.T) {
	p := program.Default()
	pr := doublePoints()
	pr.Tiers = []string{"gold", "diamond"}
	err := p.ValidatePromotion(pr)
	if !errors.Is(err, program.ErrInvalidPromotion) || !strings.Contains(err.Error(), `"diamond" is not a tier`) {
		t.Errorf("ValidatePromotion error = %v, want the unknown tier named", err)
	}
	pr.Tiers = []string{"gold"}
	if err := p.ValidatePromotion(pr); err != nil {
		t.Errorf("ValidatePromotion: %v", err)
	}
}
