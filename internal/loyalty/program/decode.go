package program

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/godwit-dev/godwit/internal/money"
)

// The raw* types mirror the YAML document. Rates are strings here so that
// they reach parseFixed as the text the user wrote; yaml.v3 hands an
// unquoted 1.25 to a string field as its source text, not via float64.
// Pointers mark fields whose absence differs from their zero value.

type rawProgram struct {
	Currency          string              `yaml:"currency"`
	Tiers             []rawTier           `yaml:"tiers"`
	Earning           *rawEarning         `yaml:"earning"`
	Expiry            *rawExpiry          `yaml:"expiry"`
	RedemptionOptions []rawOption         `yaml:"redemption_options"`
	Partners          []rawPartner        `yaml:"partners"`
	MemberTransfers   *rawMemberTransfers `yaml:"member_transfers"`
	PayWithPoints     *rawPayWithPoints   `yaml:"pay_with_points"`
	Fulfillment       *rawFulfillment     `yaml:"fulfillment"`
	PointValue        map[string]string   `yaml:"point_value"`
	Requalification   *rawRequalification `yaml:"requalification"`
	// Vesting is optional (vesting.go).
	Vesting map[string]rawVestingRule `yaml:"vesting"`
}

type rawTier struct {
	ID                 string `yaml:"id"`
	Name               string `yaml:"name"`
	Threshold          *int64 `yaml:"threshold"`
	Multiplier         string `yaml:"multiplier"`
	RedemptionDiscount string `yaml:"redemption_discount"`
}

type rawEarning struct {
	Flight    *rawFlight     `yaml:"flight"`
	Hotel     *rawAmountRule `yaml:"hotel"`
	CardSpend *rawCardSpend  `yaml:"card_spend"`
	Purchase  *rawAmountRule `yaml:"purchase"`
}

type rawFlight struct {
	StatusPoints  *bool             `yaml:"status_points"`
	FareClasses   []rawFareGroup    `yaml:"fare_classes"`
	MinimumCredit *rawMinimumCredit `yaml:"minimum_credit"`
}

type rawFareGroup struct {
	Classes []string `yaml:"classes"`
	Earning string   `yaml:"earning"`
}

type rawMinimumCredit struct {
	Points      int64  `yaml:"points"`
	FromEarning string `yaml:"from_earning"`
}

type rawAmountRule struct {
	PointsPerUnit int64 `yaml:"points_per_unit"`
	StatusPoints  *bool `yaml:"status_points"`
}

type rawCardSpend struct {
	PointsPerUnit int64         `yaml:"points_per_unit"`
	StatusPoints  *bool         `yaml:"status_points"`
	Categories    []rawCategory `yaml:"categories"`
}

type rawCategory struct {
	Name               string   `yaml:"name"`
	MerchantCategories []string `yaml:"merchant_categories"`
	PointsPerUnit      int64    `yaml:"points_per_unit"`
}

type rawExpiry struct {
	Policy      string `yaml:"policy"`
	Months      int    `yaml:"months"`
	WarningDays int    `yaml:"warning_days"`
}

type rawOption struct {
	ID     string `yaml:"id"`
	Type   string `yaml:"type"`
	Name   string `yaml:"name"`
	Points int64  `yaml:"points"`
	Zone   string `yaml:"zone"`
	Cabin  string `yaml:"cabin"`
	SKU    string `yaml:"sku"`
}

type rawPartner struct {
	ID            string       `yaml:"id"`
	Name          string       `yaml:"name"`
	Kind          string       `yaml:"kind"`
	Ratio         string       `yaml:"ratio"`
	MinimumPoints int64        `yaml:"minimum_points"`
	Increment     int64        `yaml:"increment"`
	Simulate      *rawSimulate `yaml:"simulate"`
}

type rawFulfillment struct {
	Fail  bool   `yaml:"fail"`
	Delay string `yaml:"delay"`
}

type rawSimulate struct {
	Reject bool   `yaml:"reject"`
	Delay  string `yaml:"delay"`
}

type rawMemberTransfers struct {
	MinimumPoints int64 `yaml:"minimum_points"`
	YearlyLimit   int64 `yaml:"yearly_limit"`
}

type rawPayWithPoints struct {
	PointsPerCurrencyUnit int64 `yaml:"points_per_currency_unit"`
}

var (
	idPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	// yamlTypeName is the Go type yaml.v3 names in its messages; users of the
	// file should not see our internal struct names.
	yamlTypeName = regexp.MustCompile(` in type [\w.]+`)
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// decode parses the YAML strictly into the raw form.
func decode(data []byte) (*rawProgram, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw rawProgram
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{Problem: "the document is empty"}
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &FieldError{Problem: "more than one YAML document"}
	}
	return &raw, nil
}

// yamlError turns yaml.v3's messages into FieldErrors located by line, since
// the decoder does not report field paths.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &FieldError{Problem: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		msg = yamlTypeName.ReplaceAllString(msg, "")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			errs = append(errs, &FieldError{Path: "line " + m[1], Problem: m[2]})
			continue
		}
		errs = append(errs, &FieldError{Problem: msg})
	}
	return errors.Join(errs...)
}

// checker collects FieldErrors.
type checker struct{ errs []error }

func (c *checker) add(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Problem: fmt.Sprintf(format, args...)})
}

func (c *checker) id(path, v string) {
	switch {
	case v == "":
		c.add(path, "is required")
	case !idPattern.MatchString(v):
		c.add(path, "%q must be lower-case letters, digits, '-' or '_'", v)
	}
}

func (c *checker) required(path, v string) {
	if strings.TrimSpace(v) == "" {
		c.add(path, "is required")
	}
}

func (c *checker) positive(path string, v int64) {
	if v <= 0 {
		c.add(path, "must be > 0")
	}
}

func (c *checker) duration(path, v string) time.Duration {
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		c.add(path, "%q is not a duration like 250ms or 2s", v)
	case d < 0:
		c.add(path, "must not be negative")
	}
	return d
}

func (c *checker) statusPoints(v *bool, def bool) bool {
	if v == nil {
		return def
	}
	return *v
}

// validate checks every field and builds the Program.
func (r *rawProgram) validate() (*Program, error) {
	c := &checker{}
	p := &Program{Currency: r.Currency}

	if r.Currency == "" {
		c.add("currency", "is required")
	} else if _, ok := money.Exponent(r.Currency); !ok {
		c.add("currency", "%q is not a known ISO 4217 currency", r.Currency)
	}

	p.Tiers = c.tiers(r.Tiers)
	p.Requalification = c.requalification(r.Requalification)

	if r.Earning == nil {
		c.add("earning", "is required")
	} else {
		p.Earning = c.earning(r.Earning)
	}

	if r.Expiry == nil {
		c.add("expiry", "is required")
	} else {
		p.Expiry = Expiry{Policy: r.Expiry.Policy, Months: r.Expiry.Months, WarningDays: r.Expiry.WarningDays}
		if r.Expiry.Policy != ExpiryInactivity && r.Expiry.Policy != ExpiryLot {
			c.add("expiry.policy", "%q must be %q or %q", r.Expiry.Policy, ExpiryInactivity, ExpiryLot)
		}
		if r.Expiry.Months < 1 || r.Expiry.Months > 600 {
			c.add("expiry.months", "must be between 1 and 600")
		}
		if r.Expiry.WarningDays < 0 || r.Expiry.WarningDays > 366 {
			c.add("expiry.warning_days", "must be between 0 (no warnings) and 366")
		}
	}

	p.RedemptionOptions = c.options(r.RedemptionOptions)
	p.Partners = c.partners(r.Partners)

	if r.MemberTransfers == nil {
		c.add("member_transfers", "is required")
	} else {
		mt := r.MemberTransfers
		p.MemberTransfers = MemberTransferRules{MinimumPoints: mt.MinimumPoints, YearlyLimit: mt.YearlyLimit}
		c.positive("member_transfers.minimum_points", mt.MinimumPoints)
		c.positive("member_transfers.yearly_limit", mt.YearlyLimit)
		if mt.MinimumPoints > 0 && mt.YearlyLimit > 0 && mt.MinimumPoints > mt.YearlyLimit {
			c.add("member_transfers.minimum_points", "must not exceed yearly_limit")
		}
	}

	if r.PayWithPoints == nil {
		c.add("pay_with_points", "is required")
	} else {
		p.PayWithPoints = PayWithPoints{PointsPerUnit: r.PayWithPoints.PointsPerCurrencyUnit}
		c.positive("pay_with_points.points_per_currency_unit", r.PayWithPoints.PointsPerCurrencyUnit)
	}

	if f := r.Fulfillment; f != nil {
		p.Fulfillment = FaultSettings{Fail: f.Fail, Delay: c.duration("fulfillment.delay", f.Delay)}
	}

	p.PointValues = c.pointValues(r.PointValue)
	p.Vesting = c.vesting(r.Vesting)

	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return p, nil
}

func (c *checker) tiers(raw []rawTier) []Tier {
	if len(raw) == 0 {
		c.add("tiers", "at least one tier is required")
		return nil
	}
	tiers := make([]Tier, len(raw))
	seen := map[string]bool{}
	for i, rt := range raw {
		path := fmt.Sprintf("tiers[%d]", i)
		t := Tier{ID: rt.ID, Name: rt.Name, Rank: i}
		c.id(path+".id", rt.ID)
		if seen[rt.ID] {
			c.add(path+".id", "%q is a duplicate", rt.ID)
		}
		seen[rt.ID] = true
		c.required(path+".name", rt.Name)

		switch {
		case rt.Threshold == nil:
			c.add(path+".threshold", "is required")
		case i == 0 && *rt.Threshold != 0:
			c.add(path+".threshold", "the first tier's threshold must be 0")
		case i > 0 && raw[i-1].Threshold != nil && *rt.Threshold <= *raw[i-1].Threshold:
			c.add(path+".threshold", "must be greater than the previous tier's (%d)", *raw[i-1].Threshold)
		default:
			t.Threshold = *rt.Threshold
		}

		if rt.Multiplier == "" {
			c.add(path+".multiplier", "is required")
		} else if bp, err := parseMultiplier(rt.Multiplier); err != nil {
			c.add(path+".multiplier", "%v", err)
		} else if bp < bpOne {
			c.add(path+".multiplier", "must be >= 1.0")
		} else if bp > maxMultiplierBP {
			c.add(path+".multiplier", "must be <= %s", FormatMultiplier(maxMultiplierBP))
		} else {
			t.MultiplierBP = bp
		}

		if rt.RedemptionDiscount == "" {
			c.add(path+".redemption_discount", "is required (write \"0%%\" for none)")
		} else if bp, err := parsePercent(rt.RedemptionDiscount); err != nil {
			c.add(path+".redemption_discount", "%v", err)
		} else if bp > bpOne {
			c.add(path+".redemption_discount", "must be <= 100%%")
		} else {
			t.RedemptionDiscountBP = bp
		}
		tiers[i] = t
	}
	return tiers
}

func (c *checker) earning(r *rawEarning) Earning {
	var e Earning
	if r.Flight == nil {
		c.add("earning.flight", "is required")
	} else {
		e.Flight = c.flight(r.Flight)
	}
	e.Hotel = c.amountRule("earning.hotel", r.Hotel, true)
	e.Purchase = c.amountRule("earning.purchase", r.Purchase, true)
	if r.CardSpend == nil {
		c.add("earning.card_spend", "is required")
	} else {
		e.CardSpend = c.cardSpend(r.CardSpend)
	}
	return e
}

func (c *checker) flight(r *rawFlight) FlightRule {
	f := FlightRule{
		FareClassBP:  map[string]int64{},
		StatusPoints: c.statusPoints(r.StatusPoints, true),
	}
	if len(r.FareClasses) == 0 {
		c.add("earning.flight.fare_classes", "at least one fare class is required")
	}
	for i, g := range r.FareClasses {
		path := fmt.Sprintf("earning.flight.fare_classes[%d]", i)
		bp, err := parsePercent(g.Earning)
		switch {
		case g.Earning == "":
			c.add(path+".earning", "is required")
		case err != nil:
			c.add(path+".earning", "%v", err)
		case bp > 10*bpOne:
			c.add(path+".earning", "must be <= 1000%%")
		}
		if len(g.Classes) == 0 {
			c.add(path+".classes", "at least one class is required")
		}
		for j, class := range g.Classes {
			cpath := fmt.Sprintf("%s.classes[%d]", path, j)
			if len(class) != 1 || class[0] < 'A' || class[0] > 'Z' {
				c.add(cpath, "%q must be one upper-case letter", class)
				continue
			}
			if _, dup := f.FareClassBP[class]; dup {
				c.add(cpath, "%q is listed twice", class)
				continue
			}
			f.FareClassBP[class] = bp
		}
	}
	if mc := r.MinimumCredit; mc != nil {
		f.MinimumCredit = mc.Points
		c.positive("earning.flight.minimum_credit.points", mc.Points)
		if mc.Points > MaxActivityPoints {
			c.add("earning.flight.minimum_credit.points", "must be <= %d", MaxActivityPoints)
		}
		if mc.FromEarning == "" {
			c.add("earning.flight.minimum_credit.from_earning", "is required")
		} else if bp, err := parsePercent(mc.FromEarning); err != nil {
			c.add("earning.flight.minimum_credit.from_earning", "%v", err)
		} else {
			f.MinimumCreditFromBP = bp
		}
	}
	return f
}

// maxPointsPerUnit keeps per-unit rates sane; the activity bound does the rest.
const maxPointsPerUnit = 10000

func (c *checker) amountRule(path string, r *rawAmountRule, defStatus bool) AmountRule {
	if r == nil {
		c.add(path, "is required")
		return AmountRule{}
	}
	if r.PointsPerUnit < 0 || r.PointsPerUnit > maxPointsPerUnit {
		c.add(path+".points_per_unit", "must be between 0 and %d", maxPointsPerUnit)
	}
	return AmountRule{PointsPerUnit: r.PointsPerUnit, StatusPoints: c.statusPoints(r.StatusPoints, defStatus)}
}

func (c *checker) cardSpend(r *rawCardSpend) CardSpendRule {
	const path = "earning.card_spend"
	base := c.amountRule(path, &rawAmountRule{PointsPerUnit: r.PointsPerUnit, StatusPoints: r.StatusPoints}, false)
	cs := CardSpendRule{PointsPerUnit: base.PointsPerUnit, StatusPoints: base.StatusPoints}
	type owner struct {
		cat string
		r   MCCRange
	}
	var seen []owner
	for i, rc := range r.Categories {
		cpath := fmt.Sprintf("%s.categories[%d]", path, i)
		cat := MerchantCategoryRule{Name: rc.Name, PointsPerUnit: rc.PointsPerUnit}
		c.id(cpath+".name", rc.Name)
		if rc.PointsPerUnit < 0 || rc.PointsPerUnit > maxPointsPerUnit {
			c.add(cpath+".points_per_unit", "must be between 0 and %d", maxPointsPerUnit)
		}
		if len(rc.MerchantCategories) == 0 {
			c.add(cpath+".merchant_categories", "at least one code or range is required")
		}
		for j, s := range rc.MerchantCategories {
			mpath := fmt.Sprintf("%s.merchant_categories[%d]", cpath, j)
			rg, err := parseMCCRange(s)
			if err != nil {
				c.add(mpath, "%v", err)
				continue
			}
			for _, o := range seen {
				if rg.From <= o.r.To && o.r.From <= rg.To {
					c.add(mpath, "%q overlaps %s in category %q", s, o.r, o.cat)
				}
			}
			seen = append(seen, owner{cat: rc.Name, r: rg})
			cat.Ranges = append(cat.Ranges, rg)
		}
		cs.Categories = append(cs.Categories, cat)
	}
	return cs
}

// parseMCCRange parses "4511" or "3000-3299".
func parseMCCRange(s string) (MCCRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	from, err := parseMCC(lo)
	if err != nil {
		return MCCRange{}, fmt.Errorf("%q must be a 4-digit code or a range like 3000-3299", s)
	}
	to := from
	if isRange {
		if to, err = parseMCC(hi); err != nil || to < from {
			return MCCRange{}, fmt.Errorf("%q must be a 4-digit code or a range like 3000-3299", s)
		}
	}
	return MCCRange{From: from, To: to}, nil
}

// parseMCC parses a merchant category code: exactly four ASCII digits (ISO
// 18245 codes are fixed-width, so "511" is not 0511).
func parseMCC(s string) (int, error) {
	if len(s) != 4 {
		return 0, errors.New("not 4 digits")
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not 4 digits")
		}
	}
	return strconv.Atoi(s)
}

var cabins = map[string]bool{"economy": true, "premium_economy": true, "business": true, "first": true}

func (c *checker) options(raw []rawOption) []RedemptionOption {
	opts := make([]RedemptionOption, 0, len(raw))
	seen := map[string]bool{}
	for i, ro := range raw {
		path := fmt.Sprintf("redemption_options[%d]", i)
		c.id(path+".id", ro.ID)
		if seen[ro.ID] {
			c.add(path+".id", "%q is a duplicate", ro.ID)
		}
		seen[ro.ID] = true
		c.required(path+".name", ro.Name)
		c.positive(path+".points", ro.Points)
		if ro.Points > MaxActivityPoints {
			c.add(path+".points", "must be <= %d", MaxActivityPoints)
		}
		switch ro.Type {
		case OptionAwardFlight:
			c.id(path+".zone", ro.Zone)
			if !cabins[ro.Cabin] {
				c.add(path+".cabin", "%q must be economy, premium_economy, business or first", ro.Cabin)
			}
			if ro.SKU != "" {
				c.add(path+".sku", "is only for merchandise")
			}
		case OptionUpgrade:
			if ro.Zone != "" || ro.SKU != "" {
				c.add(path, "an upgrade takes no zone or sku")
			}
			if ro.Cabin != "" && !cabins[ro.Cabin] {
				c.add(path+".cabin", "%q must be economy, premium_economy, business or first", ro.Cabin)
			}
		case OptionMerchandise:
			if !skuPattern.MatchString(ro.SKU) {
				c.add(path+".sku", "is required: letters, digits, '-' or '_'")
			}
			if ro.Zone != "" || ro.Cabin != "" {
				c.add(path, "merchandise takes no zone or cabin")
			}
		default:
			c.add(path+".type", "%q must be %s, %s or %s", ro.Type, OptionAwardFlight, OptionUpgrade, OptionMerchandise)
		}
		opts = append(opts, RedemptionOption(ro))
	}
	return opts
}

func (c *checker) partners(raw []rawPartner) []Partner {
	ps := make([]Partner, 0, len(raw))
	seen := map[string]bool{}
	for i, rp := range raw {
		path := fmt.Sprintf("partners[%d]", i)
		p := Partner{ID: rp.ID, Name: rp.Name, Kind: rp.Kind, Ratio: rp.Ratio, MinimumPoints: rp.MinimumPoints, Increment: rp.Increment}
		c.id(path+".id", rp.ID)
		if seen[rp.ID] {
			c.add(path+".id", "%q is a duplicate", rp.ID)
		}
		seen[rp.ID] = true
		c.required(path+".name", rp.Name)
		if rp.Kind != PartnerAirline && rp.Kind != PartnerHotel {
			c.add(path+".kind", "%q must be %s or %s", rp.Kind, PartnerAirline, PartnerHotel)
		}
		ratioOK := false
		if a, b, err := parseRatio(rp.Ratio); err != nil {
			c.add(path+".ratio", "%v", err)
		} else {
			p.RatioPoints, p.RatioUnits, ratioOK = a, b, true
		}
		c.positive(path+".increment", rp.Increment)
		c.positive(path+".minimum_points", rp.MinimumPoints)
		if rp.Increment > 0 {
			// Whole increments must convert to whole partner units, so no
			// transfer ever loses a fraction.
			if ratioOK && rp.Increment%p.RatioPoints != 0 {
				c.add(path+".increment", "must be a multiple of the ratio's points side (%d)", p.RatioPoints)
			}
			if rp.MinimumPoints > 0 && rp.MinimumPoints%rp.Increment != 0 {
				c.add(path+".minimum_points", "must be a multiple of increment (%d)", rp.Increment)
			}
		}
		if s := rp.Simulate; s != nil {
			p.Simulate = FaultSettings{Fail: s.Reject, Delay: c.duration(path+".simulate.delay", s.Delay)}
		}
		ps = append(ps, p)
	}
	return ps
}
