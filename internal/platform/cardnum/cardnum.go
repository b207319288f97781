// Package cardnum recognises primary account numbers (card numbers) in text, so
// the HTTP edge can refuse them and telemetry can redact them. It knows nothing
// of HTTP or payments: httpx and payment both stand on it.
package cardnum

// Placeholder replaces a card-like number in redacted text.
const Placeholder = "[card]"

// Contains reports whether s holds something that looks like a card number: a
// run of 13–19 digits, optionally grouped as card numbers are printed (4-4-4-4,
// 4-6-5, …) by single spaces or hyphens, that
// passes the Luhn check and stands on its own (digits inside an identifier —
// hex ids, tokens — are not card numbers).
func Contains[T ~string | ~[]byte](s T) bool {
	_, _, ok := find(s, 0)
	return ok
}

// Redact returns s with every card-like number replaced by Placeholder.
func Redact(s string) string {
	start, end, ok := find(s, 0)
	if !ok {
		return s
	}
	out := make([]byte, 0, len(s))
	from := 0
	for ok {
		out = append(out, s[from:start]...)
		out = append(out, Placeholder...)
		from = end
		start, end, ok = find(s, end)
	}
	return string(append(out, s[from:]...))
}

// find returns the bounds of the first card-like number in s at or after from.
func find[T ~string | ~[]byte](s T, from int) (start, end int, ok bool) {
	for i := from; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && isAlnum(s[i-1])) || hyphenJoined(s, i) {
			continue
		}
		if end, ok := runAt(s, i); ok {
			return i, end, true
		}
	}
	return 0, 0, false
}

// runAt reports whether the digit run starting at i (single separators
// allowed) is a card number, and where it ends. Separators count only where
// card numbers are grouped — after each group of four (4-4-4-4, 4-4-4-4-3) or
// as 4-6-5 and 4-6-4 — so the digit groups of an identifier such as a UUID
// (8-4-4-4-12) are not read as a card number.
func runAt[T ~string | ~[]byte](s T, i int) (end int, ok bool) {
	var digits [19]byte
	var groups [5]int // digits per group; groups[g] is the current one
	n, g := 0, 0
	for j := i; j < len(s); j++ {
		c := s[j]
		if isDigit(c) {
			if n == len(digits) {
				return 0, false // too long to be a card number
			}
			digits[n] = c - '0'
			n++
			groups[g]++
			if n >= 13 && luhn(digits[:n]) && cardGrouping(groups[:g+1]) &&
				(j+1 == len(s) || !isAlnum(s[j+1]) && !hyphenJoined(s, j+2)) {
				return j + 1, true
			}
			continue
		}
		if (c == ' ' || c == '-') && j+1 < len(s) && isDigit(s[j+1]) && j > i &&
			g+1 < len(groups) && (groups[g] == 4 || g == 1 && groups[g] == 6 && groups[0] == 4) {
			g++
			continue
		}
		break
	}
	return 0, false
}

// cardGrouping reports whether digit groups of these lengths are written as
// card numbers are: one run, groups of four with a shorter last one, or 4-6-5
// and 4-6-4 (American Express, Diners Club).
func cardGrouping(groups []int) bool {
	last := len(groups) - 1
	switch {
	case last == 0:
		return true
	case last == 2 && groups[0] == 4 && groups[1] == 6:
		return groups[2] == 5 || groups[2] == 4
	}
	for _, g := range groups[:last] {
		if g != 4 {
			return false
		}
	}
	return groups[last] >= 1 && groups[last] <= 4
}

// hyphenJoined reports whether the digit at i follows "<digit>-": the hyphen
// joins it to the digits before, so a number may neither start nor end at
// that hyphen. A card number's hyphenated groups are taken whole, and the
// digit groups of an identifier such as a UUID
// ("…-8901-234567890123") are not mistaken for one: without this, about one
// random UUID in ten thousand was refused as card data.
func hyphenJoined[T ~string | ~[]byte](s T, i int) bool {
	return i >= 2 && i < len(s) && isDigit(s[i]) && s[i-1] == '-' && isDigit(s[i-2])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') || c == '_'
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
