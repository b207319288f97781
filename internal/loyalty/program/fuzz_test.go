package program_test

import (
	"bytes"
	"testing"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

// FuzzParse feeds arbitrary bytes to the program file parser: it must never
// panic, and what it accepts must be a usable program that parses the same
// way twice.
func FuzzParse(f *testing.F) {
	def := program.DefaultYAML()
	f.Add(def)
	f.Add([]byte(""))
	f.Add([]byte("currency: USD\n"))
	f.Add([]byte("currency: [\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add(bytes.Replace(def, []byte(`multiplier: "1.25"`), []byte(`multiplier: "1.2500001"`), 1))
	f.Add(bytes.Replace(def, []byte(`redemption_discount: "0%"`), []byte(`redemption_discount: "150%"`), 1))
	f.Add(bytes.Replace(def, []byte("threshold: 25000"), []byte("threshold: 99999999999999999999"), 1))
	f.Add(bytes.Replace(def, []byte("currency: USD"), []byte("currency: usd\nextra: 1"), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := program.Parse(data)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a program and an error: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if p == nil {
			t.Fatal("Parse returned neither a program nor an error")
		}
		again, err := program.Parse(data)
		if err != nil || again == nil {
			t.Fatalf("a second Parse of accepted input failed: %v", err)
		}
	})
}
