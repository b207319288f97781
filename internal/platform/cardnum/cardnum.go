// Package cardnum recognises primary account numbers (card numbers) in text, so
// the HTTP edge can refuse them and telemetry can redact them. It knows nothing
// of HTTP or payments: httpx and payment both stand on it.
package cardnum

// Placeholder replaces a card-like number in redacted text.
const Placeholder = "[card]"

// Contains reports whether s holds something that looks like a card number: a
// run of 13–19 digits, optionally grouped by single spaces or hyphens, that
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
		if !isDigit(s[i]) || (i > 0 && isAlnum(s[i-1])) {
			continue
		}
		if end, ok := runAt(s, i); ok {
			return i, end, true
		}
	}
	return 0, 0, false
}

// runAt reports whether the digit run starting at i (single separators
// allowed) is a card number, and where it ends.
func runAt[T ~string | ~[]byte](s T, i int) (end int, ok bool) {
	var digits [19]byte
	n := 0
	for j := i; j < len(s); j++ {
		c := s[j]
		if isDigit(c) {
			if n == len(digits) {
				return 0, false // too long to be a card number
			}
			digits[n] = c - '0'
			n++
			if n >= 13 && luhn(digits[:n]) && (j+1 == len(s) || !isAlnum(s[j+1])) {
				return j + 1, true
			}
			continue
		}
		if (c == ' ' || c == '-') && j+1 < len(s) && isDigit(s[j+1]) && j > i {
			continue
		}
		break
	}
	return 0, false
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
