package loadgen

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// The operations a mix can weight.
const (
	OpBrowse   = "browse"   // GET /v1/products
	OpCheckout = "checkout" // cart, 1–3 items, checkout (member or guest)
	OpEarn     = "earn"     // a flight, hotel or card_spend activity, posted by a service
	OpRedeem   = "redeem"   // a redemption from the catalogue
	OpTransfer = "transfer" // points to another member or to a partner
)

// Operations returns the operation names in report order.
func Operations() []string {
	return []string{OpBrowse, OpCheckout, OpEarn, OpRedeem, OpTransfer}
}

// DefaultMix returns the mix used when Config.Mix is nil:
// checkout=30,earn=40,redeem=15,transfer=5,browse=10.
func DefaultMix() map[string]int {
	return map[string]int{OpCheckout: 30, OpEarn: 40, OpRedeem: 15, OpTransfer: 5, OpBrowse: 10}
}

// maxWeight bounds a single weight so sums never overflow.
const maxWeight = 1_000_000

// ParseMix parses a mix such as "checkout=30,earn=40,redeem=15,transfer=5,browse=10".
// Weights are non-negative integers, relative to their sum (they need not add up
// to 100); an operation left out has weight 0. An empty string is the default mix.
func ParseMix(s string) (map[string]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultMix(), nil
	}
	mix := make(map[string]int)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix: %q: want operation=weight", part)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if !knownOp(name) {
			return nil, fmt.Errorf("mix: unknown operation %q (want one of %s)", name, strings.Join(Operations(), ", "))
		}
		if _, dup := mix[name]; dup {
			return nil, fmt.Errorf("mix: operation %q given twice", name)
		}
		w, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("mix: %s: weight %q is not a whole number", name, value)
		}
		mix[name] = w
	}
	if err := validateMix(mix); err != nil {
		return nil, err
	}
	return mix, nil
}

func knownOp(name string) bool { return slices.Contains(Operations(), name) }

func validateMix(mix map[string]int) error {
	total := 0
	for name, w := range mix {
		if !knownOp(name) {
			return fmt.Errorf("mix: unknown operation %q (want one of %s)", name, strings.Join(Operations(), ", "))
		}
		if w < 0 || w > maxWeight {
			return fmt.Errorf("mix: %s: weight %d out of range 0..%d", name, w, maxWeight)
		}
		total += w
	}
	if total == 0 {
		return fmt.Errorf("mix: no operation has a positive weight")
	}
	return nil
}

// FormatMix renders a mix in ParseMix's syntax, in report order, leaving out
// zero weights.
func FormatMix(mix map[string]int) string {
	var parts []string
	for _, op := range Operations() {
		if w := mix[op]; w > 0 {
			parts = append(parts, op+"="+strconv.Itoa(w))
		}
	}
	return strings.Join(parts, ",")
}

// picker draws operations by weight.
type picker struct {
	names []string
	cum   []int // cumulative weights
	total int
	mix   map[string]int
}

func newPicker(mix map[string]int) *picker {
	p := &picker{mix: maps.Clone(mix)}
	for _, op := range Operations() {
		if w := mix[op]; w > 0 {
			p.total += w
			p.names = append(p.names, op)
			p.cum = append(p.cum, p.total)
		}
	}
	return p
}

func (p *picker) pick(rng *rand.Rand) string {
	n := rng.IntN(p.total)
	for i, c := range p.cum {
		if n < c {
			return p.names[i]
		}
	}
	return p.names[len(p.names)-1]
}

func (p *picker) has(op string) bool { return p.mix[op] > 0 }
