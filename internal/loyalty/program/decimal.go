package program

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// bpOne is 1.0 or 100% in basis points. Multipliers, percentages and
// discounts are all held as basis points so that arithmetic on them is
// integer arithmetic.
const bpOne = 10000

// parseFixed parses an unsigned decimal such as "1.25" into an integer scaled
// by 10^scale ("1.25" with scale 4 is 12500). It reads the digits itself
// instead of going through float64, so "1.1" is exactly 11000 and a value
// with more fractional digits than the scale is an error, not a rounding.
func parseFixed(s string, scale int) (int64, error) {
	if s == "" {
		return 0, errors.New("is empty")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	if len(frac) > scale {
		return 0, fmt.Errorf("%q has more than %d decimal places", s, scale)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%q is not a decimal number", s)
			}
		}
	}
	digits := whole + frac + strings.Repeat("0", scale-len(frac))
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v, nil
}

// parseMultiplier parses "1.25" into basis points (12500).
func parseMultiplier(s string) (int64, error) {
	return parseFixed(s, 4)
}

// parsePercent parses "12.5%" into basis points (1250). The percent sign is
// required so that "5" cannot be misread as 5% or 500%.
func parsePercent(s string) (int64, error) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("%q must end in %%", s)
	}
	return parseFixed(num, 2)
}

// parseRatio parses "3:1" into its two positive integers.
func parseRatio(s string) (int64, int64, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%q must look like 1:1", s)
	}
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || x <= 0 || y <= 0 || strings.HasPrefix(a, "+") || strings.HasPrefix(b, "+") {
		return 0, 0, fmt.Errorf("%q must be two positive integers, like 3:1", s)
	}
	return x, y, nil
}

// formatFixed is parseFixed's inverse, without trailing zeros: 12500 at scale
// 4 is "1.25", 10000 is "1".
func formatFixed(v int64, scale int) string {
	s := strconv.FormatInt(v, 10)
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	whole, frac := s[:len(s)-scale], strings.TrimRight(s[len(s)-scale:], "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}

// FormatBP formats basis points as a percentage: 12500 is "125%", 1250 is
// "12.5%". Span attributes and API responses use it to show rates exactly.
func FormatBP(bp int64) string {
	return formatFixed(bp, 2) + "%"
}

// FormatMultiplier formats basis points as a multiplier: 12500 is "1.25".
func FormatMultiplier(bp int64) string {
	return formatFixed(bp, 4)
}
