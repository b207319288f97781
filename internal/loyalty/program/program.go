// Package program holds the rules of the loyalty program — tiers, earning
// tables, promotions, expiry, the redemption catalogue, partners and
// pay-with-points — and the pure arithmetic on them. It does no I/O beyond
// reading a program file and knows nothing of the database or HTTP: the
// loyalty service asks it "how many points is this worth?" and books the
// answer in the ledger.
//
// The program is described by a YAML file; a default built from published
// airline and hotel programs is embedded (default.yaml). All rates are held
// as integers (basis points, points per currency unit) and parsed from their
// decimal text without float64, so a multiplier of "1.1" means exactly 1.1.
//
// A *Program is read-only once parsed and safe for concurrent use.
package program

import (
	_ "embed"
	"fmt"
	"os"
	"time"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the built-in program file, a starting point
// for a custom one (godwit could print it with a flag).
func DefaultYAML() []byte {
	return append([]byte(nil), defaultYAML...)
}

// MaxActivityPoints bounds the base points one activity may earn. Real
// activities earn far less; the bound keeps every later product (tier and
// promotion multipliers up to 100×) well inside int64, so the bonus
// functions can return plain int64s.
const MaxActivityPoints int64 = 1_000_000_000_000

// maxMultiplierBP caps tier and promotion multipliers at 100×, for the same
// reason as MaxActivityPoints.
const maxMultiplierBP = 100 * bpOne

// Program is a parsed, validated program definition. Build one with Parse,
// Load or Default; do not modify it afterwards (it is shared by requests).
type Program struct {
	// Currency is the ISO 4217 code in which spend earns and points are valued.
	Currency string
	// Tiers are ordered by strictly increasing Threshold, the first at 0.
	Tiers []Tier
	// Requalification softens the yearly requalification (soft landing,
	// grace, notice); optional.
	Requalification Requalification
	// Earning holds the base-point rule of each activity type.
	Earning Earning
	// Expiry says when points expire.
	Expiry Expiry
	// RedemptionOptions is the catalogue, in file order.
	RedemptionOptions []RedemptionOption
	// Partners are the programs points can be transferred to, in file order.
	Partners []Partner
	// MemberTransfers limits member-to-member transfers.
	MemberTransfers MemberTransferRules
	// PayWithPoints values points at checkout.
	PayWithPoints PayWithPoints
	// Fulfillment holds fault settings for the built-in redemption fulfilment
	// provider, so failures can be demonstrated.
	Fulfillment FaultSettings
	// PointValues are what a point costs the program, per currency, for the
	// liability report (point_value; optional, sorted by currency).
	PointValues []PointValue
	// Vesting says how long each activity type's points pend before they
	// can be spent (vesting.go).
	Vesting Vesting
}

// Tier is a status level. Members reach it by status points earned in the
// calendar year.
type Tier struct {
	// ID is the stable lower-case identifier ("gold") stored with members.
	ID string
	// Name is for display ("Gold").
	Name string
	// Rank is the tier's position, 0 for the lowest; compare ranks, not ids.
	Rank int
	// Threshold is the status points needed in a calendar year.
	Threshold int64
	// MultiplierBP is the earning multiplier in basis points (12500 = 1.25×);
	// the tier bonus is the part above 1×.
	MultiplierBP int64
	// RedemptionDiscountBP is the discount on redemption costs in basis
	// points (500 = 5%).
	RedemptionDiscountBP int64
}

// Expiry policies.
const (
	// ExpiryInactivity expires all of a member's points Months after their
	// last earning or redeeming activity.
	ExpiryInactivity = "inactivity"
	// ExpiryLot expires each lot Months after it was earned, at the end of
	// that calendar quarter.
	ExpiryLot = "lot"
)

// Expiry is the expiry policy: ExpiryInactivity or ExpiryLot, and a number of
// months.
type Expiry struct {
	Policy string
	Months int
	// WarningDays is how many days before points expire the expiry job
	// warns about them (a points.expiring event per lot, once); 0 is off.
	WarningDays int
}

// MemberTransferRules limits member-to-member transfers (family pooling).
type MemberTransferRules struct {
	// MinimumPoints is the smallest transfer.
	MinimumPoints int64
	// YearlyLimit is the most a sender may send in a calendar year (UTC).
	YearlyLimit int64
}

// PayWithPoints values points when they pay (part of) a checkout.
type PayWithPoints struct {
	// PointsPerUnit is the points worth one major unit of the program
	// currency (100 means 100 points = 1 USD, one point per cent).
	PointsPerUnit int64
}

// FaultSettings make a simulated dependency fail or slow down on purpose.
type FaultSettings struct {
	// Fail makes every call fail (for a partner: reject).
	Fail bool
	// Delay is added to every call.
	Delay time.Duration
}

// Parse reads and validates a program file. Unknown fields are rejected, and
// every problem found is reported as a *FieldError naming its path; the
// errors are joined, so the message lists them one per line.
func Parse(data []byte) (*Program, error) {
	raw, err := decode(data)
	if err != nil {
		return nil, err
	}
	return raw.validate()
}

// Load reads and parses the program file at path.
func Load(path string) (*Program, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("program: load %s: %w", path, err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s:\n%w", path, err)
	}
	return p, nil
}

// Default returns the built-in program. Each call returns a fresh copy, so a
// caller (a test) may change it without affecting others.
func Default() *Program {
	p, err := Parse(defaultYAML)
	if err != nil {
		// The embedded file is part of the binary and a test parses it, so
		// this is a build defect, not a run-time condition.
		panic("program: embedded default.yaml is invalid: " + err.Error())
	}
	return p
}

// Tier returns the tier with the given id.
func (p *Program) Tier(id string) (Tier, bool) {
	for _, t := range p.Tiers {
		if t.ID == id {
			return t, true
		}
	}
	return Tier{}, false
}

// TierFor returns the highest tier whose threshold statusPoints meets. Below
// the first threshold (only possible for negative points, after reversals)
// it returns the lowest tier.
func (p *Program) TierFor(statusPoints int64) Tier {
	best := p.Tiers[0]
	for _, t := range p.Tiers[1:] {
		if statusPoints >= t.Threshold {
			best = t
		}
	}
	return best
}

// NextTier returns the tier above t, or false if t is the highest (or not a
// tier of this program).
func (p *Program) NextTier(t Tier) (Tier, bool) {
	for i, x := range p.Tiers {
		if x.ID == t.ID && i+1 < len(p.Tiers) {
			return p.Tiers[i+1], true
		}
	}
	return Tier{}, false
}

// LowestTier returns the tier new members start in.
func (p *Program) LowestTier() Tier { return p.Tiers[0] }
