package program_test

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
)

func flight(miles int64, class string) program.Activity {
	return program.Activity{Type: program.ActivityFlight, Flight: &program.Flight{
		DistanceMiles: miles, FareClass: class, Cabin: "economy", Origin: "JFK", Destination: "LAX",
	}}
}

func usd(minor int64) money.Money { return money.Money{Amount: minor, Currency: "USD"} }

func TestBaseFlight(t *testing.T) {
	p := program.Default()
	full := func(pts int64, rate string, bp int64) program.BaseResult {
		return program.BaseResult{BasePoints: pts, StatusPoints: pts, EarningRate: rate, FareEarningBP: bp}
	}
	minCredit := func(rate string, bp int64) program.BaseResult {
		r := full(500, rate, bp)
		r.MinimumCreditApplied = true
		return r
	}
	tests := []struct {
		name string
		a    program.Activity
		want program.BaseResult
	}{
		{"first F 150%", flight(1000, "F"), full(1500, "150%", 15000)},
		{"first A", flight(1000, "A"), full(1500, "150%", 15000)},
		{"first P", flight(1000, "P"), full(1500, "150%", 15000)},
		{"business J 125%", flight(1000, "J"), full(1250, "125%", 12500)},
		{"business C", flight(1000, "C"), full(1250, "125%", 12500)},
		{"business D", flight(1000, "D"), full(1250, "125%", 12500)},
		{"business Z", flight(1000, "Z"), full(1250, "125%", 12500)},
		{"full economy Y 100%", flight(2475, "Y"), full(2475, "100%", 10000)},
		{"full economy B", flight(2475, "B"), full(2475, "100%", 10000)},
		{"full economy M", flight(2475, "M"), full(2475, "100%", 10000)},
		{"discount H 75%", flight(1000, "H"), full(750, "75%", 7500)},
		{"discount K", flight(1000, "K"), full(750, "75%", 7500)},
		{"discount U", flight(1000, "U"), full(750, "75%", 7500)},
		{"deep discount Q 50%", flight(1000, "Q"), full(500, "50%", 5000)},
		{"deep discount V", flight(1000, "V"), full(500, "50%", 5000)},
		{"deep discount W", flight(1000, "W"), full(500, "50%", 5000)},
		{"deep discount S", flight(1000, "S"), full(500, "50%", 5000)},
		{"basic T 25%", flight(1000, "T"), full(250, "25%", 2500)},
		{"basic L", flight(1000, "L"), full(250, "25%", 2500)},
		{"award O 0%", flight(5000, "O"), full(0, "0%", 0)},
		{"award G 0%, no minimum credit", flight(100, "G"), full(0, "0%", 0)},

		{"floor 75% of 1001", flight(1001, "H"), full(750, "75%", 7500)},
		{"floor 50% of 1001", flight(1001, "Q"), full(500, "50%", 5000)},
		{"floor 25% of 3", flight(3, "T"), full(0, "25%", 2500)},
		{"floor 150% of 1001", flight(1001, "F"), full(1501, "150%", 15000)},

		{"minimum credit on short Y", flight(200, "Y"), minCredit("100%", 10000)},
		{"minimum credit at 499 Y", flight(499, "Y"), minCredit("100%", 10000)},
		{"no minimum credit needed at 500 Y", flight(500, "Y"), full(500, "100%", 10000)},
		{"above minimum at 501 Y", flight(501, "Y"), full(501, "100%", 10000)},
		{"minimum credit on short F", flight(300, "F"), minCredit("150%", 15000)},
		{"minimum credit after floor on J", flight(399, "J"), minCredit("125%", 12500)},
		{"F just at minimum", flight(334, "F"), full(501, "150%", 15000)},
		{"no minimum credit on 75% fare", flight(200, "H"), full(150, "75%", 7500)},
		{"no minimum credit on 50% fare", flight(200, "S"), full(100, "50%", 5000)},
		{"no minimum credit on 25% fare", flight(1, "T"), full(0, "25%", 2500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Base(tt.a)
			if err != nil {
				t.Fatalf("Base: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Base (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBaseFlightStatusPointsOff(t *testing.T) {
	p := mustParse(t, withEdits(t, "  flight:\n    status_points: true", "  flight:\n    status_points: false"))
	got, err := p.Base(flight(1000, "Y"))
	if err != nil {
		t.Fatal(err)
	}
	if got.BasePoints != 1000 || got.StatusPoints != 0 {
		t.Errorf("got base %d status %d, want 1000 and 0", got.BasePoints, got.StatusPoints)
	}
}

func TestBaseSpend(t *testing.T) {
	p := program.Default()
	card := func(minor int64, mcc string) program.Activity {
		return program.Activity{Type: program.ActivityCardSpend, Amount: usd(minor), MerchantCategory: mcc}
	}
	tests := []struct {
		name string
		a    program.Activity
		want program.BaseResult
	}{
		{"hotel 10 per dollar", program.Activity{Type: program.ActivityHotel, Amount: usd(12345)},
			program.BaseResult{BasePoints: 1234, StatusPoints: 1234, EarningRate: "10/USD"}},
		{"hotel 9 cents floors to 0", program.Activity{Type: program.ActivityHotel, Amount: usd(9)},
			program.BaseResult{BasePoints: 0, StatusPoints: 0, EarningRate: "10/USD"}},
		{"hotel 10 cents is one point", program.Activity{Type: program.ActivityHotel, Amount: usd(10)},
			program.BaseResult{BasePoints: 1, StatusPoints: 1, EarningRate: "10/USD"}},
		{"purchase 1 per dollar", program.Activity{Type: program.ActivityPurchase, Amount: usd(2599)},
			program.BaseResult{BasePoints: 25, StatusPoints: 25, EarningRate: "1/USD"}},
		{"purchase under a dollar", program.Activity{Type: program.ActivityPurchase, Amount: usd(99)},
			program.BaseResult{BasePoints: 0, StatusPoints: 0, EarningRate: "1/USD"}},

		{"card 2999 general", card(10000, "2999"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card 3000 airlines start", card(10000, "3000"), program.BaseResult{BasePoints: 200, EarningRate: "2/USD", MerchantCategory: "airlines"}},
		{"card 3299 airlines end", card(10000, "3299"), program.BaseResult{BasePoints: 200, EarningRate: "2/USD", MerchantCategory: "airlines"}},
		{"card 3300 car rental is general", card(10000, "3300"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card 3500 general", card(10000, "3500"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card 3501 lodging start", card(10000, "3501"), program.BaseResult{BasePoints: 200, EarningRate: "2/USD", MerchantCategory: "lodging"}},
		{"card 3999 lodging end", card(10000, "3999"), program.BaseResult{BasePoints: 200, EarningRate: "2/USD", MerchantCategory: "lodging"}},
		{"card 4000 general", card(10000, "4000"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card 4510 general", card(10000, "4510"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card 4511 airlines", card(10000, "4511"), program.BaseResult{BasePoints: 200, EarningRate: "2/USD", MerchantCategory: "airlines"}},
		{"card 4512 general", card(10000, "4512"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card 7011 lodging", card(10000, "7011"), program.BaseResult{BasePoints: 200, EarningRate: "2/USD", MerchantCategory: "lodging"}},
		{"card 0742 leading zero", card(10000, "0742"), program.BaseResult{BasePoints: 100, EarningRate: "1/USD"}},
		{"card floors general", card(199, "5411"), program.BaseResult{BasePoints: 1, EarningRate: "1/USD"}},
		{"card floors travel", card(199, "3000"), program.BaseResult{BasePoints: 3, EarningRate: "2/USD", MerchantCategory: "airlines"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Base(tt.a)
			if err != nil {
				t.Fatalf("Base: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Base (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBaseZeroExponentCurrency(t *testing.T) {
	p := mustParse(t, withEdits(t, "currency: USD", "currency: JPY"))
	jpy := func(a int64) money.Money { return money.Money{Amount: a, Currency: "JPY"} }
	tests := []struct {
		name string
		a    program.Activity
		want program.BaseResult
	}{
		{"hotel", program.Activity{Type: program.ActivityHotel, Amount: jpy(12345)},
			program.BaseResult{BasePoints: 123450, StatusPoints: 123450, EarningRate: "10/JPY"}},
		{"purchase one yen", program.Activity{Type: program.ActivityPurchase, Amount: jpy(1)},
			program.BaseResult{BasePoints: 1, StatusPoints: 1, EarningRate: "1/JPY"}},
		{"card general", program.Activity{Type: program.ActivityCardSpend, Amount: jpy(999), MerchantCategory: "5812"},
			program.BaseResult{BasePoints: 999, EarningRate: "1/JPY"}},
		{"card travel", program.Activity{Type: program.ActivityCardSpend, Amount: jpy(999), MerchantCategory: "7011"},
			program.BaseResult{BasePoints: 1998, EarningRate: "2/JPY", MerchantCategory: "lodging"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Base(tt.a)
			if err != nil {
				t.Fatalf("Base: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Base (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := p.Base(program.Activity{Type: program.ActivityHotel, Amount: usd(100)}); !errors.Is(err, program.ErrCurrencyNotAccepted) {
		t.Errorf("USD in a JPY program: error = %v, want ErrCurrencyNotAccepted", err)
	}
}

func TestBaseErrors(t *testing.T) {
	p := program.Default()
	eur := money.Money{Amount: 1000, Currency: "EUR"}
	tests := []struct {
		name     string
		a        program.Activity
		wantErrs []error
	}{
		{"unknown type", program.Activity{Type: "car_rental"}, []error{program.ErrUnknownActivityType}},
		{"empty type", program.Activity{}, []error{program.ErrUnknownActivityType}},
		{"flight without details", program.Activity{Type: program.ActivityFlight}, nil},
		{"flight zero miles", flight(0, "Y"), nil},
		{"flight negative miles", flight(-5, "Y"), nil},
		{"fare class not in table", flight(1000, "E"), []error{program.ErrUnknownFareClass}},
		{"fare class lower case", flight(1000, "y"), []error{program.ErrUnknownFareClass}},
		{"fare class empty", flight(1000, ""), []error{program.ErrUnknownFareClass}},
		{"fare class two letters", flight(1000, "YY"), []error{program.ErrUnknownFareClass}},
		{"hotel in EUR", program.Activity{Type: program.ActivityHotel, Amount: eur}, []error{program.ErrCurrencyNotAccepted}},
		{"purchase in EUR", program.Activity{Type: program.ActivityPurchase, Amount: eur}, []error{program.ErrCurrencyNotAccepted}},
		{"card in EUR", program.Activity{Type: program.ActivityCardSpend, Amount: eur, MerchantCategory: "5411"}, []error{program.ErrCurrencyNotAccepted}},
		{"hotel unknown currency", program.Activity{Type: program.ActivityHotel, Amount: money.Money{Amount: 5, Currency: "XYZ"}}, []error{money.ErrUnknownCurrency}},
		{"hotel missing amount", program.Activity{Type: program.ActivityHotel}, []error{money.ErrUnknownCurrency}},
		{"hotel zero amount", program.Activity{Type: program.ActivityHotel, Amount: usd(0)}, []error{money.ErrInvalidAmount}},
		{"purchase negative amount", program.Activity{Type: program.ActivityPurchase, Amount: usd(-100)}, []error{money.ErrInvalidAmount}},
		{"card mcc missing", program.Activity{Type: program.ActivityCardSpend, Amount: usd(100)}, []error{program.ErrInvalidMerchantCategory}},
		{"card mcc three digits", program.Activity{Type: program.ActivityCardSpend, Amount: usd(100), MerchantCategory: "301"}, []error{program.ErrInvalidMerchantCategory}},
		{"card mcc five digits", program.Activity{Type: program.ActivityCardSpend, Amount: usd(100), MerchantCategory: "30000"}, []error{program.ErrInvalidMerchantCategory}},
		{"card mcc letters", program.Activity{Type: program.ActivityCardSpend, Amount: usd(100), MerchantCategory: "30a0"}, []error{program.ErrInvalidMerchantCategory}},
		{"card mcc signed", program.Activity{Type: program.ActivityCardSpend, Amount: usd(100), MerchantCategory: "+300"}, []error{program.ErrInvalidMerchantCategory}},
		{"card mcc padded", program.Activity{Type: program.ActivityCardSpend, Amount: usd(100), MerchantCategory: " 3000"}, []error{program.ErrInvalidMerchantCategory}},
		{"absurd amount", program.Activity{Type: program.ActivityHotel, Amount: usd(math.MaxInt64)}, nil},
		{"absurd distance", flight(math.MaxInt64, "F"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Base(tt.a)
			if err == nil {
				t.Fatalf("Base = %+v, want an error", got)
			}
			if !errors.Is(err, program.ErrInvalidActivity) {
				t.Errorf("error %v does not wrap ErrInvalidActivity", err)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("error %v does not wrap %v", err, want)
				}
			}
			if diff := cmp.Diff(program.BaseResult{}, got); diff != "" {
				t.Errorf("result on error not zero:\n%s", diff)
			}
		})
	}
}

func TestTierFor(t *testing.T) {
	p := program.Default()
	tests := []struct {
		points int64
		want   string
	}{
		{-1, "blue"}, {0, "blue"}, {24999, "blue"}, {25000, "silver"}, {49999, "silver"},
		{50000, "gold"}, {99999, "gold"}, {100000, "platinum"}, {100001, "platinum"},
		{10_000_000, "platinum"}, {math.MaxInt64, "platinum"},
	}
	for _, tt := range tests {
		if got := p.TierFor(tt.points).ID; got != tt.want {
			t.Errorf("TierFor(%d) = %s, want %s", tt.points, got, tt.want)
		}
	}
	if got := p.LowestTier().ID; got != "blue" {
		t.Errorf("LowestTier = %s, want blue", got)
	}
}

func TestNextTier(t *testing.T) {
	p := program.Default()
	tests := []struct {
		from   program.Tier
		want   string
		wantOK bool
	}{
		{tier(t, p, "blue"), "silver", true},
		{tier(t, p, "silver"), "gold", true},
		{tier(t, p, "gold"), "platinum", true},
		{tier(t, p, "platinum"), "", false},
		{program.Tier{ID: "diamond"}, "", false},
	}
	for _, tt := range tests {
		got, ok := p.NextTier(tt.from)
		if got.ID != tt.want || ok != tt.wantOK {
			t.Errorf("NextTier(%s) = %s, %v; want %s, %v", tt.from.ID, got.ID, ok, tt.want, tt.wantOK)
		}
	}
}

func TestTierBonus(t *testing.T) {
	p := program.Default()
	odd := mustParse(t, withEdits(t, `multiplier: "1.25"`, `multiplier: "1.15"`))
	tests := []struct {
		name string
		base int64
		tier program.Tier
		want int64
	}{
		{"blue earns no bonus", 1000, tier(t, p, "blue"), 0},
		{"silver quarter", 1000, tier(t, p, "silver"), 250},
		{"silver floors 250.25", 1001, tier(t, p, "silver"), 250},
		{"silver floors 0.75", 3, tier(t, p, "silver"), 0},
		{"silver exactly 1", 4, tier(t, p, "silver"), 1},
		{"gold floors 499.5", 999, tier(t, p, "gold"), 499},
		{"platinum doubles", 2475, tier(t, p, "platinum"), 2475},
		{"zero base", 0, tier(t, p, "platinum"), 0},
		{"negative base", -100, tier(t, p, "platinum"), 0},
		// With float64, 100 × (1.15 − 1) is 14.999999999999991 and floors to 14.
		{"1.15 is exact", 100, tier(t, odd, "silver"), 15},
		{"huge base saturates", math.MaxInt64, program.Tier{MultiplierBP: 1_000_000}, math.MaxInt64},
		{"largest activity fits", program.MaxActivityPoints, program.Tier{MultiplierBP: 1_000_000}, 99 * program.MaxActivityPoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := program.TierBonus(tt.base, tt.tier); got != tt.want {
				t.Errorf("TierBonus(%d, %s) = %d, want %d", tt.base, tt.tier.ID, got, tt.want)
			}
			if got := p.TierBonus(tt.base, tt.tier); got != tt.want {
				t.Errorf("(*Program).TierBonus(%d, %s) = %d, want %d", tt.base, tt.tier.ID, got, tt.want)
			}
		})
	}
}

func TestActivityTypes(t *testing.T) {
	want := []string{"flight", "hotel", "card_spend", "purchase"}
	if diff := cmp.Diff(want, program.ActivityTypes()); diff != "" {
		t.Errorf("ActivityTypes (-want +got):\n%s", diff)
	}
	for _, at := range want {
		if !program.IsActivityType(at) {
			t.Errorf("IsActivityType(%q) = false", at)
		}
	}
	if program.IsActivityType("Flight") {
		t.Error(`IsActivityType("Flight") = true`)
	}
}
