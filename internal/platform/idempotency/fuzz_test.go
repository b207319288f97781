package idempotency_test

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// FuzzValidateKey checks ValidateKey against its specification: 1–255 visible
// ASCII characters, and every refusal is a 400-class invalid_idempotency_key.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"", "k", "order-1", "a b", "\x00", "é", "\x7f", "k\r\nX-Evil: 1", string(make([]byte, 256)),
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" +
			"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" +
			"0123456789012345678901234567890123456789012345678901234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := len(key) >= 1 && len(key) <= 255
		for i := 0; i < len(key); i++ {
			if key[i] < 0x21 || key[i] > 0x7e {
				want = false
			}
		}
		err := idempotency.ValidateKey(key)
		if (err == nil) != want {
			t.Fatalf("ValidateKey(%q) = %v, want accepted=%v", key, err, want)
		}
		if err != nil && (errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != "invalid_idempotency_key") {
			t.Fatalf("ValidateKey(%q): kind %s code %s", key, errs.KindOf(err), errs.CodeOf(err))
		}
	})
}
