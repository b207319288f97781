package payment

// ContainsCardNumber reports whether b holds something that looks like a
// primary account number: a run of 13–19 digits, optionally grouped by single
// spaces or hyphens, that passes the Luhn check. Checkout refuses such requests
// before anything is decoded, stored or logged.
func ContainsCardNumber(b []byte) bool {
	for i := 0; i < len(b); i++ {
		// A run must stand on its own: digits inside an identifier (hex ids,
		// tokens) are not card numbers.
		if !isDigit(b[i]) || (i > 0 && isAlnum(b[i-1])) {
			continue
		}
		// Collect the digits of the run starting at i, allowing single separators.
		var digits [19]byte
		n := 0
		for j := i; j < len(b); j++ {
			c := b[j]
			if isDigit(c) {
				if n == len(digits) {
					n++ // too long to be a card number
					break
				}
				digits[n] = c - '0'
				n++
				if n >= 13 && luhn(digits[:n]) && (j+1 == len(b) || !isAlnum(b[j+1])) {
					return true
				}
				continue
			}
			if (c == ' ' || c == '-') && j+1 < len(b) && isDigit(b[j+1]) && j > i {
				continue
			}
			break
		}
	}
	return false
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
