package program_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
)

func TestOptions(t *testing.T) {
	p := program.Default()
	opts := p.Options()
	var ids []string
	for _, o := range opts {
		ids = append(ids, o.ID)
	}
	wantIDs := []string{
		"award-domestic-economy", "award-domestic-business",
		"award-regional-economy", "award-regional-business",
		"award-long-haul-economy", "award-long-haul-business",
		"upgrade-segment",
		"merch-luggage-tag", "merch-travel-mug", "merch-headphones", "merch-carry-on",
	}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("option ids (-want +got):\n%s", diff)
	}
	opts[0].Points = 1
	if o, _ := p.Option("award-domestic-economy"); o.Points != 12500 {
		t.Error("changing the Options() slice changed the program")
	}

	tests := []struct {
		id     string
		want   program.RedemptionOption
		wantOK bool
	}{
		{"award-domestic-economy", program.RedemptionOption{ID: "award-domestic-economy", Type: program.OptionAwardFlight,
			Name: "Domestic award flight, economy", Points: 12500, Zone: "domestic", Cabin: "economy"}, true},
		{"award-domestic-business", program.RedemptionOption{ID: "award-domestic-business", Type: program.OptionAwardFlight,
			Name: "Domestic award flight, business", Points: 25000, Zone: "domestic", Cabin: "business"}, true},
		{"award-long-haul-economy", program.RedemptionOption{ID: "award-long-haul-economy", Type: program.OptionAwardFlight,
			Name: "Long-haul award flight, economy", Points: 30000, Zone: "long-haul", Cabin: "economy"}, true},
		{"award-long-haul-business", program.RedemptionOption{ID: "award-long-haul-business", Type: program.OptionAwardFlight,
			Name: "Long-haul award flight, business", Points: 70000, Zone: "long-haul", Cabin: "business"}, true},
		{"upgrade-segment", program.RedemptionOption{ID: "upgrade-segment", Type: program.OptionUpgrade,
			Name: "Cabin upgrade, one segment", Points: 15000}, true},
		{"merch-travel-mug", program.RedemptionOption{ID: "merch-travel-mug", Type: program.OptionMerchandise,
			Name: "Insulated travel mug", Points: 2500, SKU: "travel-mug"}, true},
		{"award-moon-first", program.RedemptionOption{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, ok := p.Option(tt.id)
			if ok != tt.wantOK {
				t.Fatalf("Option(%q) ok = %v, want %v", tt.id, ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Option(%q) (-want +got):\n%s", tt.id, diff)
			}
		})
	}
}

func TestRedemptionCost(t *testing.T) {
	p := program.Default()
	opt := func(points int64) program.RedemptionOption { return program.RedemptionOption{ID: "x", Points: points} }
	domestic, _ := p.Option("award-domestic-economy")
	longBiz, _ := p.Option("award-long-haul-business")
	tests := []struct {
		name string
		o    program.RedemptionOption
		tier program.Tier
		want program.Cost
	}{
		{"blue pays list", domestic, tier(t, p, "blue"), program.Cost{Points: 12500, DiscountBP: 0, Discount: 0, Final: 12500}},
		{"silver pays list", domestic, tier(t, p, "silver"), program.Cost{Points: 12500, DiscountBP: 0, Discount: 0, Final: 12500}},
		{"gold 5%", domestic, tier(t, p, "gold"), program.Cost{Points: 12500, DiscountBP: 500, Discount: 625, Final: 11875}},
		{"platinum 10%", longBiz, tier(t, p, "platinum"), program.Cost{Points: 70000, DiscountBP: 1000, Discount: 7000, Final: 63000}},
		{"gold floors 617.25", opt(12345), tier(t, p, "gold"), program.Cost{Points: 12345, DiscountBP: 500, Discount: 617, Final: 11728}},
		{"platinum floors 1234.5", opt(12345), tier(t, p, "platinum"), program.Cost{Points: 12345, DiscountBP: 1000, Discount: 1234, Final: 11111}},
		{"gold discount under one point", opt(19), tier(t, p, "gold"), program.Cost{Points: 19, DiscountBP: 500, Discount: 0, Final: 19}},
		{"whole discount", opt(5000), program.Tier{RedemptionDiscountBP: 10000}, program.Cost{Points: 5000, DiscountBP: 10000, Discount: 5000, Final: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, program.RedemptionCost(tt.o, tt.tier)); diff != "" {
				t.Errorf("RedemptionCost (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, p.RedemptionCost(tt.o, tt.tier)); diff != "" {
				t.Errorf("(*Program).RedemptionCost (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPartners(t *testing.T) {
	p := program.Default()
	got, ok := p.Partner("meridian-air")
	want := program.Partner{ID: "meridian-air", Name: "Meridian Air", Kind: program.PartnerAirline,
		Ratio: "3:1", RatioPoints: 3, RatioUnits: 1, MinimumPoints: 3000, Increment: 3000}
	if !ok {
		t.Fatal("no partner meridian-air")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Partner (-want +got):\n%s", diff)
	}
	if _, ok := p.Partner("nowhere-air"); ok {
		t.Error("Partner(nowhere-air) ok = true")
	}
}

func TestPartnerUnits(t *testing.T) {
	p := program.Default()
	partner := func(id string) program.Partner {
		pt, ok := p.Partner(id)
		if !ok {
			t.Fatalf("no partner %q", id)
		}
		return pt
	}
	tests := []struct {
		name    string
		partner string
		points  int64
		want    int64
		wantErr error
	}{
		{"1:1 at minimum", "northwind-airways", 1000, 1000, nil},
		{"1:1 several increments", "northwind-airways", 25000, 25000, nil},
		{"1:1 below minimum", "northwind-airways", 999, 0, program.ErrTransferBelowMinimum},
		{"1:1 off increment", "northwind-airways", 1500, 0, program.ErrTransferIncrement},
		{"3:1 at minimum", "meridian-air", 3000, 1000, nil},
		{"3:1 three increments", "meridian-air", 9000, 3000, nil},
		{"3:1 off increment", "meridian-air", 4000, 0, program.ErrTransferIncrement},
		{"3:1 below minimum", "meridian-air", 2999, 0, program.ErrTransferBelowMinimum},
		{"1:2 half-increment above minimum", "harbor-hotels", 1500, 3000, nil},
		{"1:2 one increment is below minimum", "harbor-hotels", 500, 0, program.ErrTransferBelowMinimum},
		{"zero points", "northwind-airways", 0, 0, program.ErrInvalidPoints},
		{"negative points", "northwind-airways", -1000, 0, program.ErrInvalidPoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := partner(tt.partner).PartnerUnits(tt.points)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("PartnerUnits(%d): %v", tt.points, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("PartnerUnits(%d) error = %v, want %v", tt.points, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("PartnerUnits(%d) = %d, want %d", tt.points, got, tt.want)
			}
		})
	}
	if pt := partner("northwind-airways"); pt.Simulate != (program.FaultSettings{}) {
		t.Errorf("default simulate = %+v, want none", pt.Simulate)
	}
}

func TestCheckMemberTransfer(t *testing.T) {
	p := program.Default()
	tests := []struct {
		name         string
		points, sent int64
		wantErr      error
	}{
		{"at minimum", 100, 0, nil},
		{"below minimum", 99, 0, program.ErrTransferBelowMinimum},
		{"whole limit at once", 100000, 0, nil},
		{"over the limit at once", 100001, 0, program.ErrTransferLimitExceeded},
		{"fills the limit", 500, 99500, nil},
		{"over the remaining limit", 1000, 99500, program.ErrTransferLimitExceeded},
		{"limit already used", 100, 100000, program.ErrTransferLimitExceeded},
		{"negative sent is none", 100000, -5, nil},
		{"zero", 0, 0, program.ErrInvalidPoints},
		{"negative", -100, 0, program.ErrInvalidPoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.CheckMemberTransfer(tt.points, tt.sent)
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("CheckMemberTransfer(%d, %d): %v", tt.points, tt.sent, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("CheckMemberTransfer(%d, %d) error = %v, want %v", tt.points, tt.sent, err, tt.wantErr)
			}
		})
	}
}

func TestPayWithPoints(t *testing.T) {
	def := program.Default()
	odd := mustParse(t, withEdits(t, "points_per_currency_unit: 100", "points_per_currency_unit: 150"))
	yen := mustParse(t, withEdits(t, "currency: USD", "currency: JPY"))
	jpy := func(a int64) money.Money { return money.Money{Amount: a, Currency: "JPY"} }

	pointsTests := []struct {
		name    string
		p       *program.Program
		amount  money.Money
		want    int64
		wantErr error
	}{
		{"one point per cent", def, usd(1234), 1234, nil},
		{"zero", def, usd(0), 0, nil},
		{"ceil 1.5 points", odd, usd(1), 2, nil},
		{"exact 3 points", odd, usd(2), 3, nil},
		{"one dollar", odd, usd(100), 150, nil},
		{"yen", yen, jpy(15), 1500, nil},
		{"wrong currency", def, money.Money{Amount: 100, Currency: "EUR"}, 0, program.ErrCurrencyNotAccepted},
		{"negative", def, usd(-1), 0, money.ErrInvalidAmount},
		{"unknown currency", def, money.Money{Amount: 1, Currency: "ABC"}, 0, money.ErrUnknownCurrency},
	}
	for _, tt := range pointsTests {
		t.Run("PointsForAmount "+tt.name, func(t *testing.T) {
			got, err := tt.p.PointsForAmount(tt.amount)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("PointsForAmount(%s): %v", tt.amount, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("PointsForAmount(%s) error = %v, want %v", tt.amount, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("PointsForAmount(%s) = %d, want %d", tt.amount, got, tt.want)
			}
		})
	}

	amountTests := []struct {
		name   string
		p      *program.Program
		points int64
		want   money.Money
	}{
		{"one cent per point", def, 1234, usd(1234)},
		{"zero", def, 0, usd(0)},
		{"negative is worth nothing", def, -5, usd(0)},
		{"floor under a cent", odd, 1, usd(0)},
		{"floor 2.67 cents", odd, 4, usd(2)},
		{"exact dollar", odd, 150, usd(100)},
		{"yen floors", yen, 150, jpy(1)},
	}
	for _, tt := range amountTests {
		t.Run("AmountForPoints "+tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.p.AmountForPoints(tt.points)); diff != "" {
				t.Errorf("AmountForPoints(%d) (-want +got):\n%s", tt.points, diff)
			}
		})
	}

	// Points priced by PointsForAmount always buy at least the amount.
	for cents := int64(0); cents < 500; cents++ {
		pts, err := odd.PointsForAmount(usd(cents))
		if err != nil {
			t.Fatal(err)
		}
		if got := odd.AmountForPoints(pts); got.Amount < cents {
			t.Fatalf("%d cents cost %d points, which are worth only %s", cents, pts, got)
		}
	}
}

func TestFaultSettingsDefaultZero(t *testing.T) {
	if got := program.Default().Fulfillment; got.Fail || got.Delay != 0*time.Second {
		t.Errorf("default Fulfillment = %+v, want no faults", got)
	}
}
