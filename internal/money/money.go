// Package money holds amounts of money as integer minor units of an ISO 4217
// currency, with checked arithmetic. There are no floats in this package: a
// price, a refund or a points conversion must come out the same on every
// machine and every replay, which binary floating point cannot promise.
package money

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors. Callers (the HTTP layer in particular) map them with
// errors.Is; every error this package returns wraps exactly one of them with
// context.
var (
	// ErrUnknownCurrency means the currency code is not in the table below
	// (codes are upper case, as ISO 4217 writes them).
	ErrUnknownCurrency = errors.New("unknown currency")
	// ErrCurrencyMismatch means two amounts in different currencies were combined.
	ErrCurrencyMismatch = errors.New("currency mismatch")
	// ErrOverflow means a result does not fit in an int64.
	ErrOverflow = errors.New("integer overflow")
	// ErrInvalidAmount means an amount has the wrong sign for its use
	// (negative where it must not be, or not positive where it must be).
	ErrInvalidAmount = errors.New("invalid amount")
	// ErrDivideByZero means a division by zero was asked for.
	ErrDivideByZero = errors.New("division by zero")
)

// Money is an amount in the minor unit of its currency (cents for USD, yen
// for JPY) and the ISO 4217 code of that currency. Its JSON form,
// {"amount": 1234, "currency": "USD"}, is the API's money shape.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// exponents maps ISO 4217 codes to the number of decimal digits of their minor
// unit. The list is the currencies the project is likely to meet; add to it
// rather than guessing an exponent at run time.
var exponents = map[string]int{
	"AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
	"CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2,
	"IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0,
	"KWD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2,
	"PLN": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2,
	"TWD": 2, "USD": 2, "VND": 0, "ZAR": 2,
}

// Exponent reports the number of minor-unit digits of a currency (2 for USD,
// 0 for JPY, 3 for KWD) and whether the code is known.
func Exponent(code string) (int, bool) {
	e, ok := exponents[code]
	return e, ok
}

// UnitSize reports how many minor units make one major unit of a currency
// (100 for USD, 1 for JPY) and whether the code is known.
func UnitSize(code string) (int64, bool) {
	e, ok := exponents[code]
	if !ok {
		return 0, false
	}
	size := int64(1)
	for range e {
		size *= 10
	}
	return size, true
}

// Currencies lists the known currency codes in alphabetical order.
func Currencies() []string {
	codes := make([]string, 0, len(exponents))
	for c := range exponents {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}

// New returns an amount after checking that its currency is known. It does
// not check the sign: refunds and adjustments are negative.
func New(amount int64, currency string) (Money, error) {
	m := Money{Amount: amount, Currency: currency}
	if err := m.Validate(); err != nil {
		return Money{}, err
	}
	return m, nil
}

// Validate checks that the currency is known. The sign is the caller's
// business; see ValidateNonNegative and ValidatePositive.
func (m Money) Validate() error {
	if _, ok := exponents[m.Currency]; !ok {
		return fmt.Errorf("money: currency %q: %w", m.Currency, ErrUnknownCurrency)
	}
	return nil
}

// ValidateNonNegative checks the currency and that the amount is zero or more.
func (m Money) ValidateNonNegative() error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.Amount < 0 {
		return fmt.Errorf("money: amount %d must not be negative: %w", m.Amount, ErrInvalidAmount)
	}
	return nil
}

// ValidatePositive checks the currency and that the amount is more than zero,
// the rule for anything a member pays or is credited for.
func (m Money) ValidatePositive() error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.Amount <= 0 {
		return fmt.Errorf("money: amount %d must be positive: %w", m.Amount, ErrInvalidAmount)
	}
	return nil
}

// IsZero reports whether the amount is zero, whatever the currency.
func (m Money) IsZero() bool { return m.Amount == 0 }

// Add returns m + o. Both must be in the same currency.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("money: add %s to %s: %w", o.Currency, m.Currency, ErrCurrencyMismatch)
	}
	sum, err := AddInt64(m.Amount, o.Amount)
	if err != nil {
		return Money{}, fmt.Errorf("money: add: %w", err)
	}
	return Money{Amount: sum, Currency: m.Currency}, nil
}

// Sub returns m - o. Both must be in the same currency.
func (m Money) Sub(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("money: subtract %s from %s: %w", o.Currency, m.Currency, ErrCurrencyMismatch)
	}
	diff, err := SubInt64(m.Amount, o.Amount)
	if err != nil {
		return Money{}, fmt.Errorf("money: subtract: %w", err)
	}
	return Money{Amount: diff, Currency: m.Currency}, nil
}

// Mul returns m × n, for a quantity of items at a unit price.
func (m Money) Mul(n int64) (Money, error) {
	p, err := MulInt64(m.Amount, n)
	if err != nil {
		return Money{}, fmt.Errorf("money: multiply: %w", err)
	}
	return Money{Amount: p, Currency: m.Currency}, nil
}

// String formats the amount in major units with the currency's exponent, as
// in "12.34 USD", "-0.05 EUR" or "1500 JPY". An unknown currency is shown in
// minor units, since its exponent is not known.
func (m Money) String() string {
	exp, ok := exponents[m.Currency]
	if !ok || exp == 0 {
		return strconv.FormatInt(m.Amount, 10) + " " + m.Currency
	}
	// Work on the magnitude as uint64 so that math.MinInt64 formats too.
	mag := absU(m.Amount)
	digits := strconv.FormatUint(mag, 10)
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	cut := len(digits) - exp
	var b strings.Builder
	if m.Amount < 0 {
		b.WriteByte('-')
	}
	b.WriteString(digits[:cut])
	b.WriteByte('.')
	b.WriteString(digits[cut:])
	b.WriteByte(' ')
	b.WriteString(m.Currency)
	return b.String()
}

// AddInt64 returns a + b, or ErrOverflow if the sum does not fit in an int64.
// It is exported because points are int64 too and need the same guard.
func AddInt64(a, b int64) (int64, error) {
	s := a + b
	// Overflow happened exactly when a and b share a sign and s does not.
	if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, fmt.Errorf("%d + %d: %w", a, b, ErrOverflow)
	}
	return s, nil
}

// SubInt64 returns a - b, or ErrOverflow if the difference does not fit.
func SubInt64(a, b int64) (int64, error) {
	d := a - b
	if (a >= 0) != (b >= 0) && (d >= 0) != (a >= 0) {
		return 0, fmt.Errorf("%d - %d: %w", a, b, ErrOverflow)
	}
	return d, nil
}

// MulInt64 returns a × b, or ErrOverflow if the product does not fit.
func MulInt64(a, b int64) (int64, error) {
	p, err := MulDivFloor(a, b, 1)
	if err != nil {
		return 0, fmt.Errorf("%d * %d: %w", a, b, ErrOverflow)
	}
	return p, nil
}

// MulDivFloor returns floor(a × b / d) computed exactly: the product is held
// in 128 bits, so only the final quotient has to fit in an int64. Rates such
// as "points per currency unit" and basis-point multipliers use it so that
// the order of multiplication and division never changes a result. Floor
// rounds towards negative infinity.
func MulDivFloor(a, b, d int64) (int64, error) {
	return mulDiv(a, b, d, false)
}

// MulDivCeil returns ceil(a × b / d), exactly, like MulDivFloor but rounding
// towards positive infinity.
func MulDivCeil(a, b, d int64) (int64, error) {
	return mulDiv(a, b, d, true)
}

func mulDiv(a, b, d int64, ceil bool) (int64, error) {
	if d == 0 {
		return 0, fmt.Errorf("%d * %d / 0: %w", a, b, ErrDivideByZero)
	}
	neg := (a < 0) != (b < 0) != (d < 0)
	hi, lo := bits.Mul64(absU(a), absU(b))
	ud := absU(d)
	if hi >= ud {
		return 0, fmt.Errorf("%d * %d / %d: %w", a, b, d, ErrOverflow)
	}
	q, r := bits.Div64(hi, lo, ud)
	// Division truncated the magnitude. Floor of a negative quotient and ceil
	// of a positive one need the magnitude rounded up instead.
	if r != 0 && neg != ceil {
		if q == math.MaxUint64 {
			return 0, fmt.Errorf("%d * %d / %d: %w", a, b, d, ErrOverflow)
		}
		q++
	}
	if neg {
		if q > 1<<63 {
			return 0, fmt.Errorf("%d * %d / %d: %w", a, b, d, ErrOverflow)
		}
		// For q == 1<<63 the negation wraps to exactly math.MinInt64.
		return int64(-q), nil
	}
	if q > math.MaxInt64 {
		return 0, fmt.Errorf("%d * %d / %d: %w", a, b, d, ErrOverflow)
	}
	return int64(q), nil
}

// absU returns |x| as a uint64, which holds |math.MinInt64| too.
func absU(x int64) uint64 {
	if x < 0 {
		return uint64(-(x + 1)) + 1
	}
	return uint64(x)
}
