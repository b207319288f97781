package program

import (
	"fmt"
	"math/big"
	"sort"

	"github.com/godwit-dev/godwit/internal/money"
)

// PointValueScale is the number of decimal places a point's value may have
// in the program file ("0.0125" has 4; up to 8 are allowed, enough for a
// point worth a hundredth of a yen cent).
const PointValueScale = 8

// PointValue is what one point costs the program in one currency, for the
// liability report: Scaled is the value in major units times 10^8, parsed
// exactly from the file's decimal text ("0.0100" EUR is 1,000,000).
type PointValue struct {
	Currency string
	Scaled   int64
}

// String is the value as a decimal, without trailing zeros ("0.01").
func (v PointValue) String() string { return formatFixed(v.Scaled, PointValueScale) }

// Money is the value of points in v's currency, in minor units, rounded
// half away from zero to the minor unit: the only rounding in the liability
// report, done once per figure from its exact points. The product is taken
// in big integers, so no points count overflows it.
func (v PointValue) Money(points int64) (money.Money, error) {
	exp, ok := money.Exponent(v.Currency)
	if !ok {
		return money.Money{}, fmt.Errorf("point value: %w: %s", money.ErrUnknownCurrency, v.Currency)
	}
	num := new(big.Int).Mul(big.NewInt(points), big.NewInt(v.Scaled))
	num.Mul(num, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(PointValueScale), nil)
	neg := num.Sign() < 0
	num.Abs(num)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	if !q.IsInt64() {
		return money.Money{}, fmt.Errorf("point value of %d points in %s: %w", points, v.Currency, money.ErrOverflow)
	}
	return money.Money{Amount: q.Int64(), Currency: v.Currency}, nil
}

// pointValues checks the optional point_value map (currency → decimal) and
// returns it sorted by currency, so reports list currencies in one order.
func (c *checker) pointValues(raw map[string]string) []PointValue {
	out := make([]PointValue, 0, len(raw))
	for cur, text := range raw {
		path := "point_value." + cur
		if _, ok := money.Exponent(cur); !ok {
			c.add(path, "%q is not a known ISO 4217 currency", cur)
			continue
		}
		v, err := parseFixed(text, PointValueScale)
		if err != nil {
			c.add(path, "%v", err)
			continue
		}
		if v <= 0 {
			c.add(path, "must be greater than 0")
			continue
		}
		out = append(out, PointValue{Currency: cur, Scaled: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}
