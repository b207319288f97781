package cardnum_test

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/cardnum"
)

func TestContainsAndRedact(t *testing.T) {
	for _, c := range []struct{ in, redacted string }{
		{"/v1/carts/6011111111111117/items", "/v1/carts/[card]/items"},
		{"4111111111111111@example.test", "[card]@example.test"},
		{"a 4111 1111 1111 1111 and 5555-5555-5555-4444.", "a [card] and [card]."},
		{"x 378282246310005 y", "x [card] y"},
		{"order 1234567890123 ok", "order 1234567890123 ok"},               // fails Luhn
		{"cart_e5a8a8601111111111111117", "cart_e5a8a8601111111111111117"}, // inside an id
		{"12345678901234567890123", "12345678901234567890123"},             // too long
		{"", ""},
	} {
		if got := cardnum.Redact(c.in); got != c.redacted {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.redacted)
		}
		if got, want := cardnum.Contains(c.in), c.in != c.redacted; got != want {
			t.Errorf("Contains(%q) = %v, want %v", c.in, got, want)
		}
		if got, want := cardnum.Contains([]byte(c.in)), c.in != c.redacted; got != want {
			t.Errorf("Contains([]byte(%q)) = %v, want %v", c.in, got, want)
		}
	}
}
