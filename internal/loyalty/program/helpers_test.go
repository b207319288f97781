package program_test

import (
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

// withEdits returns the default program file with each old text replaced by
// its new text. Every old text must occur exactly once, so a test cannot
// silently stop testing what it claims when default.yaml changes.
func withEdits(t *testing.T, oldNew ...string) []byte {
	t.Helper()
	if len(oldNew)%2 != 0 {
		t.Fatal("withEdits needs old/new pairs")
	}
	s := string(program.DefaultYAML())
	for i := 0; i < len(oldNew); i += 2 {
		if n := strings.Count(s, oldNew[i]); n != 1 {
			t.Fatalf("default.yaml contains %q %d times, want once", oldNew[i], n)
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	return []byte(s)
}

// mustParse parses a program file that the test expects to be valid.
func mustParse(t *testing.T, data []byte) *program.Program {
	t.Helper()
	p, err := program.Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func tier(t *testing.T, p *program.Program, id string) program.Tier {
	t.Helper()
	tr, ok := p.Tier(id)
	if !ok {
		t.Fatalf("no tier %q", id)
	}
	return tr
}
