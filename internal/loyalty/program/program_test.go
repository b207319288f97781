package program_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

func TestDefaultParses(t *testing.T) {
	p, err := program.Parse(program.DefaultYAML())
	if err != nil {
		t.Fatalf("embedded default.yaml does not parse: %v", err)
	}
	if diff := cmp.Diff(program.Default(), p); diff != "" {
		t.Errorf("Default() differs from parsing DefaultYAML() (-Default +Parse):\n%s", diff)
	}
	if p.Currency != "USD" {
		t.Errorf("Currency = %q, want USD", p.Currency)
	}
	wantTiers := []program.Tier{
		{ID: "blue", Name: "Blue", Rank: 0, Threshold: 0, MultiplierBP: 10000, RedemptionDiscountBP: 0},
		{ID: "silver", Name: "Silver", Rank: 1, Threshold: 25000, MultiplierBP: 12500, RedemptionDiscountBP: 0},
		{ID: "gold", Name: "Gold", Rank: 2, Threshold: 50000, MultiplierBP: 15000, RedemptionDiscountBP: 500},
		{ID: "platinum", Name: "Platinum", Rank: 3, Threshold: 100000, MultiplierBP: 20000, RedemptionDiscountBP: 1000},
	}
	if diff := cmp.Diff(wantTiers, p.Tiers); diff != "" {
		t.Errorf("Tiers (-want +got):\n%s", diff)
	}
	wantFares := map[string]int64{
		"F": 15000, "A": 15000, "P": 15000,
		"J": 12500, "C": 12500, "D": 12500, "Z": 12500,
		"Y": 10000, "B": 10000, "M": 10000,
		"H": 7500, "K": 7500, "U": 7500,
		"Q": 5000, "V": 5000, "W": 5000, "S": 5000,
		"T": 2500, "L": 2500,
		"O": 0, "G": 0,
	}
	if diff := cmp.Diff(wantFares, p.Earning.Flight.FareClassBP); diff != "" {
		t.Errorf("fare classes (-want +got):\n%s", diff)
	}
	gotRules := []any{
		p.Earning.Flight.MinimumCredit, p.Earning.Flight.MinimumCreditFromBP, p.Earning.Flight.StatusPoints,
		p.Earning.Hotel, p.Earning.Purchase,
		p.Earning.CardSpend.PointsPerUnit, p.Earning.CardSpend.StatusPoints,
		p.Expiry, p.MemberTransfers, p.PayWithPoints, p.Fulfillment,
	}
	wantRules := []any{
		int64(500), int64(10000), true,
		program.AmountRule{PointsPerUnit: 10, StatusPoints: true}, program.AmountRule{PointsPerUnit: 1, StatusPoints: true},
		int64(1), false,
		program.Expiry{Policy: program.ExpiryInactivity, Months: 24},
		program.MemberTransferRules{MinimumPoints: 100, YearlyLimit: 100000},
		program.PayWithPoints{PointsPerUnit: 100},
		program.FaultSettings{},
	}
	if diff := cmp.Diff(wantRules, gotRules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	wantCats := []program.MerchantCategoryRule{
		{Name: "airlines", Ranges: []program.MCCRange{{From: 3000, To: 3299}, {From: 4511, To: 4511}}, PointsPerUnit: 2},
		{Name: "lodging", Ranges: []program.MCCRange{{From: 3501, To: 3999}, {From: 7011, To: 7011}}, PointsPerUnit: 2},
	}
	if diff := cmp.Diff(wantCats, p.Earning.CardSpend.Categories); diff != "" {
		t.Errorf("card categories (-want +got):\n%s", diff)
	}
}

func TestDefaultReturnsIndependentCopies(t *testing.T) {
	a := program.Default()
	a.Tiers[0].Name = "changed"
	a.Earning.Flight.FareClassBP["Y"] = 1
	b := program.Default()
	if b.Tiers[0].Name != "Blue" || b.Earning.Flight.FareClassBP["Y"] != 10000 {
		t.Error("changing one Default() changed another")
	}
}

func TestDefaultYAMLIsACopy(t *testing.T) {
	a := program.DefaultYAML()
	a[0] = 'X'
	if program.DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML returned the embedded bytes themselves")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, withEdits(t, "currency: USD", "currency: EUR"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := program.Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p.Currency != "EUR" {
		t.Errorf("Currency = %q, want EUR", p.Currency)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, withEdits(t, `multiplier: "1.5"`, `multiplier: "0.5"`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = program.Load(bad)
	if !errors.Is(err, program.ErrInvalidProgram) || !strings.Contains(err.Error(), "bad.yaml") ||
		!strings.Contains(err.Error(), "program: tiers[2].multiplier: must be >= 1.0") {
		t.Errorf("Load(bad) error = %v; want the file name and the bad field", err)
	}

	if _, err := program.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestParseFaultSettings(t *testing.T) {
	p := mustParse(t, withEdits(t,
		"fail: false\n  delay: 0s", "fail: true\n  delay: 1500ms",
		"reject: false\n      delay: 0s", "reject: true\n      delay: 2s",
	))
	if diff := cmp.Diff(program.FaultSettings{Fail: true, Delay: 1500 * time.Millisecond}, p.Fulfillment); diff != "" {
		t.Errorf("Fulfillment (-want +got):\n%s", diff)
	}
	pt, _ := p.Partner("northwind-airways")
	if diff := cmp.Diff(program.FaultSettings{Fail: true, Delay: 2 * time.Second}, pt.Simulate); diff != "" {
		t.Errorf("partner Simulate (-want +got):\n%s", diff)
	}
}

func TestParseExpiryWarningDays(t *testing.T) {
	// Absent is off; the example in default.yaml's comment parses.
	if d := mustParse(t, program.DefaultYAML()).Expiry.WarningDays; d != 0 {
		t.Errorf("WarningDays without warning_days = %d, want 0 (off)", d)
	}
	p := mustParse(t, withEdits(t, "months: 24", "months: 24\n  warning_days: 30"))
	if want := (program.Expiry{Policy: program.ExpiryInactivity, Months: 24, WarningDays: 30}); p.Expiry != want {
		t.Errorf("Expiry = %+v, want %+v", p.Expiry, want)
	}
}

func TestParseOptionalFieldsDefault(t *testing.T) {
	// Removing the optional parts leaves a valid program with their defaults.
	p := mustParse(t, withEdits(t,
		"fulfillment:\n  fail: false\n  delay: 0s\n", "",
		"    simulate:\n      reject: false\n      delay: 0s\n", "",
		"  hotel:\n    points_per_unit: 10\n    status_points: true", "  hotel:\n    points_per_unit: 10",
		"  card_spend:\n    points_per_unit: 1\n    status_points: false", "  card_spend:\n    points_per_unit: 1",
		"    minimum_credit:\n      points: 500\n      from_earning: \"100%\"\n", "",
	))
	if p.Fulfillment != (program.FaultSettings{}) {
		t.Errorf("Fulfillment = %+v, want zero", p.Fulfillment)
	}
	if !p.Earning.Hotel.StatusPoints || p.Earning.CardSpend.StatusPoints {
		t.Errorf("status_points defaults: hotel %v card %v, want true false", p.Earning.Hotel.StatusPoints, p.Earning.CardSpend.StatusPoints)
	}
	if p.Earning.Flight.MinimumCredit != 0 {
		t.Errorf("MinimumCredit = %d, want 0 without minimum_credit", p.Earning.Flight.MinimumCredit)
	}
}

func TestParseUnquotedDecimalsAreExact(t *testing.T) {
	// yaml would read 1.1 as a float; the program must still see exactly 1.1.
	p := mustParse(t, withEdits(t, `multiplier: "1.25"`, `multiplier: 1.1`))
	if got := tier(t, p, "silver").MultiplierBP; got != 11000 {
		t.Errorf("MultiplierBP = %d, want 11000", got)
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string // a line of the error message
	}{
		{"multiplier below one", withEdits(t, `multiplier: "1.5"`, `multiplier: "0.99"`), "program: tiers[2].multiplier: must be >= 1.0"},
		{"multiplier too precise", withEdits(t, `multiplier: "1.5"`, `multiplier: "1.50001"`), `program: tiers[2].multiplier: "1.50001" has more than 4 decimal places`},
		{"multiplier not a number", withEdits(t, `multiplier: "1.5"`, `multiplier: "one and a half"`), "program: tiers[2].multiplier: \"one and a half\" is not a decimal number"},
		{"multiplier negative", withEdits(t, `multiplier: "1.5"`, `multiplier: "-1.5"`), "program: tiers[2].multiplier: \"-1.5\" is not a decimal number"},
		{"multiplier exponent", withEdits(t, `multiplier: "1.5"`, `multiplier: 15e-1`), "program: tiers[2].multiplier: \"15e-1\" is not a decimal number"},
		{"multiplier too big", withEdits(t, `multiplier: "1.5"`, `multiplier: "101"`), "program: tiers[2].multiplier: must be <= 100"},
		{"multiplier missing", withEdits(t, `    multiplier: "1.5"`+"\n", ""), "program: tiers[2].multiplier: is required"},
		{"discount without percent", withEdits(t, `redemption_discount: "10%"`, `redemption_discount: "10"`), `program: tiers[3].redemption_discount: "10" must end in %`},
		{"discount over 100", withEdits(t, `redemption_discount: "10%"`, `redemption_discount: "100.01%"`), "program: tiers[3].redemption_discount: must be <= 100%"},
		{"discount too precise", withEdits(t, `redemption_discount: "10%"`, `redemption_discount: "10.125%"`), `program: tiers[3].redemption_discount: "10.125" has more than 2 decimal places`},
		{"first threshold not zero", withEdits(t, "threshold: 0\n", "threshold: 1\n"), "program: tiers[0].threshold: the first tier's threshold must be 0"},
		{"threshold not increasing", withEdits(t, "threshold: 50000", "threshold: 25000"), "program: tiers[2].threshold: must be greater than the previous tier's (25000)"},
		{"threshold missing", withEdits(t, "    threshold: 100000\n", ""), "program: tiers[3].threshold: is required"},
		{"threshold wrong type", withEdits(t, "threshold: 100000", "threshold: lots"), "program: line "},
		{"duplicate tier id", withEdits(t, "id: silver", "id: blue"), `program: tiers[1].id: "blue" is a duplicate`},
		{"bad tier id", withEdits(t, "id: silver", "id: Silver Tier"), `program: tiers[1].id: "Silver Tier" must be lower-case`},
		{"tier name missing", withEdits(t, "name: Gold\n", "name: \"\"\n"), "program: tiers[2].name: is required"},
		{"unknown field", withEdits(t, "    name: Gold\n", "    name: Gold\n    colour: gold\n"), "field colour not found"},
		{"unknown top-level field", withEdits(t, "currency: USD", "currency: USD\nversion: 2"), "field version not found"},
		{"unknown currency", withEdits(t, "currency: USD", "currency: XYZ"), `program: currency: "XYZ" is not a known ISO 4217 currency`},
		{"lower-case currency", withEdits(t, "currency: USD", "currency: usd"), `program: currency: "usd" is not a known`},
		{"fare class twice", withEdits(t, "classes: [T, L]", "classes: [T, Y]"), `program: earning.flight.fare_classes[5].classes[1]: "Y" is listed twice`},
		{"fare class lower case", withEdits(t, "classes: [T, L]", "classes: [T, l]"), `program: earning.flight.fare_classes[5].classes[1]: "l" must be one upper-case letter`},
		{"fare class two letters", withEdits(t, "classes: [T, L]", "classes: [T, LL]"), `program: earning.flight.fare_classes[5].classes[1]: "LL" must be one upper-case letter`},
		{"fare earning not percent", withEdits(t, `earning: "25%"`, `earning: "0.25"`), `program: earning.flight.fare_classes[5].earning: "0.25" must end in %`},
		{"fare earning too big", withEdits(t, `earning: "25%"`, `earning: "1001%"`), "program: earning.flight.fare_classes[5].earning: must be <= 1000%"},
		{"minimum credit zero", withEdits(t, "points: 500", "points: 0"), "program: earning.flight.minimum_credit.points: must be > 0"},
		{"minimum credit threshold", withEdits(t, `from_earning: "100%"`, `from_earning: full`), `program: earning.flight.minimum_credit.from_earning: "full" must end in %`},
		{"hotel rate negative", withEdits(t, "points_per_unit: 10", "points_per_unit: -10"), "program: earning.hotel.points_per_unit: must be between 0 and 10000"},
		{"status points not bool", withEdits(t, "    points_per_unit: 10\n    status_points: true", "    points_per_unit: 10\n    status_points: sometimes"), "program: line "},
		{"mcc too long", withEdits(t, `["3501-3999", "7011"]`, `["3501-3999", "70110"]`), `program: earning.card_spend.categories[1].merchant_categories[1]: "70110" must be a 4-digit code`},
		{"mcc range reversed", withEdits(t, `["3501-3999", "7011"]`, `["3999-3501", "7011"]`), `program: earning.card_spend.categories[1].merchant_categories[0]: "3999-3501" must be a 4-digit code or a range`},
		{"mcc overlap", withEdits(t, `["3501-3999", "7011"]`, `["3200-3999", "7011"]`), `program: earning.card_spend.categories[1].merchant_categories[0]: "3200-3999" overlaps 3000-3299 in category "airlines"`},
		{"category without codes", withEdits(t, `merchant_categories: ["3501-3999", "7011"]`, `merchant_categories: []`), "program: earning.card_spend.categories[1].merchant_categories: at least one code or range is required"},
		{"expiry policy", withEdits(t, "policy: inactivity", "policy: never"), `program: expiry.policy: "never" must be "inactivity" or "lot"`},
		{"expiry months", withEdits(t, "months: 24", "months: 0"), "program: expiry.months: must be between 1 and 600"},
		{"expiry warning days negative", withEdits(t, "months: 24", "months: 24\n  warning_days: -1"), "program: expiry.warning_days: must be between 0 (no warnings) and 366"},
		{"expiry warning days too many", withEdits(t, "months: 24", "months: 24\n  warning_days: 400"), "program: expiry.warning_days: must be between 0 (no warnings) and 366"},
		{"option type", withEdits(t, "type: upgrade", "type: lounge"), `program: redemption_options[6].type: "lounge" must be award_flight, upgrade or merchandise`},
		{"option duplicate id", withEdits(t, "id: merch-travel-mug", "id: merch-luggage-tag"), `program: redemption_options[8].id: "merch-luggage-tag" is a duplicate`},
		{"option points zero", withEdits(t, "points: 15000", "points: 0"), "program: redemption_options[6].points: must be > 0"},
		{"award bad cabin", withEdits(t, "points: 70000\n    zone: long-haul\n    cabin: business", "points: 70000\n    zone: long-haul\n    cabin: lie-flat"), `program: redemption_options[5].cabin: "lie-flat" must be economy`},
		{"award without zone", withEdits(t, "    zone: regional\n    cabin: business\n", "    cabin: business\n"), "program: redemption_options[3].zone: is required"},
		{"merchandise without sku", withEdits(t, "    sku: headphones\n", ""), "program: redemption_options[9].sku: is required"},
		{"partner ratio", withEdits(t, `ratio: "1:2"`, `ratio: "1/2"`), `program: partners[2].ratio: "1/2" must look like 1:1`},
		{"partner ratio zero", withEdits(t, `ratio: "1:2"`, `ratio: "0:2"`), `program: partners[2].ratio: "0:2" must be two positive integers`},
		{"partner increment vs ratio", withEdits(t, "minimum_points: 3000\n    increment: 3000", "minimum_points: 3000\n    increment: 1000"), "program: partners[1].increment: must be a multiple of the ratio's points side (3)"},
		{"partner minimum vs increment", withEdits(t, "minimum_points: 1000\n    increment: 500", "minimum_points: 1250\n    increment: 500"), "program: partners[2].minimum_points: must be a multiple of increment (500)"},
		{"partner kind", withEdits(t, "kind: hotel", "kind: rail"), `program: partners[2].kind: "rail" must be airline or hotel`},
		{"partner duplicate", withEdits(t, "id: meridian-air", "id: harbor-hotels"), `program: partners[2].id: "harbor-hotels" is a duplicate`},
		{"partner delay", withEdits(t, "reject: false\n      delay: 0s", "reject: false\n      delay: soon"), `program: partners[0].simulate.delay: "soon" is not a duration`},
		{"partner simulate fail field", withEdits(t, "reject: false\n      delay: 0s", "fail: true\n      delay: 0s"), "field fail not found"},
		{"member transfer minimum above limit", withEdits(t, "minimum_points: 100\n", "minimum_points: 100001\n"), "program: member_transfers.minimum_points: must not exceed yearly_limit"},
		{"member transfer limit", withEdits(t, "yearly_limit: 100000", "yearly_limit: 0"), "program: member_transfers.yearly_limit: must be > 0"},
		{"pay with points", withEdits(t, "points_per_currency_unit: 100", "points_per_currency_unit: 0"), "program: pay_with_points.points_per_currency_unit: must be > 0"},
		{"fulfillment delay", withEdits(t, "fail: false\n  delay: 0s", "fail: false\n  delay: 5"), `program: fulfillment.delay: "5" is not a duration`},
		{"fulfillment negative delay", withEdits(t, "fail: false\n  delay: 0s", "fail: false\n  delay: -1s"), "program: fulfillment.delay: must not be negative"},
		{"empty document", []byte("# nothing\n"), "program: the document is empty"},
		{"two documents", append(program.DefaultYAML(), []byte("---\ncurrency: EUR\n")...), "program: more than one YAML document"},
		{"not a mapping", []byte("- a\n- b\n"), "program: line 1: cannot unmarshal"},
		{"sections missing", []byte("currency: USD\n"), "program: earning: is required"},
		{"no tiers", []byte("currency: USD\n"), "program: tiers: at least one tier is required"},
		{"earning rules missing", withEdits(t, "  purchase:\n    points_per_unit: 1\n    status_points: true\n", ""), "program: earning.purchase: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := program.Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want error containing %q", p.Tiers, tt.want)
			}
			if p != nil {
				t.Error("Parse returned a program with an error")
			}
			if !errors.Is(err, program.ErrInvalidProgram) {
				t.Errorf("error %v does not wrap ErrInvalidProgram", err)
			}
			var fe *program.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v holds no *FieldError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := program.Parse(withEdits(t,
		`multiplier: "1.5"`, `multiplier: "0.5"`,
		"months: 24", "months: 0",
		"points_per_currency_unit: 100", "points_per_currency_unit: -1",
	))
	for _, want := range []string{"tiers[2].multiplier", "expiry.months", "pay_with_points.points_per_currency_unit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		bp                   int64
		wantPct, wantMultipl string
	}{
		{0, "0%", "0"},
		{10000, "100%", "1"},
		{12500, "125%", "1.25"},
		{1250, "12.5%", "0.125"},
		{1, "0.01%", "0.0001"},
		{15000, "150%", "1.5"},
	}
	for _, tt := range tests {
		if got := program.FormatBP(tt.bp); got != tt.wantPct {
			t.Errorf("FormatBP(%d) = %q, want %q", tt.bp, got, tt.wantPct)
		}
		if got := program.FormatMultiplier(tt.bp); got != tt.wantMultipl {
			t.Errorf("FormatMultiplier(%d) = %q, want %q", tt.bp, got, tt.wantMultipl)
		}
	}
}
