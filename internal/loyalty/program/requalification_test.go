package program_test

import (
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

// commentedRequalification and requalificationExample uncomment default.yaml's requalification example.
const (
	commentedRequalification = "# requalification:\n#   soft_landing: true\n#   grace_days: 90\n#   notice_days: 30\n"
	requalificationExample   = "requalification:\n  soft_landing: true\n  grace_days: 90\n  notice_days: 30\n"
)

func TestRequalificationSettings(t *testing.T) {
	if got := program.Default().Requalification; got != (program.Requalification{}) {
		t.Errorf("default program: %+v, want the strict rule (zero value)", got)
	}
	p := mustParse(t, withEdits(t, commentedRequalification, requalificationExample))
	if want := (program.Requalification{SoftLanding: true, GraceDays: 90, NoticeDays: 30}); p.Requalification != want {
		t.Errorf("documented example: %+v, want %+v", p.Requalification, want)
	}
	for _, tt := range []struct{ edit, want string }{
		{"  grace_days: 365\n", "requalification.grace_days: must be between 0 and 364"},
		{"  grace_days: -1\n", "requalification.grace_days: must be between 0 and 364"},
		{"  notice_days: 400\n", "requalification.notice_days: must be between 0 and 366"},
		{"  grace: 30\n", "grace"},
	} {
		_, err := program.Parse(withEdits(t, commentedRequalification, "requalification:\n"+tt.edit))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.edit, err, tt.want)
		}
	}
}

func TestLanding(t *testing.T) {
	strict := program.Default()
	soft := program.Default()
	soft.Requalification.SoftLanding = true
	for _, tt := range []struct {
		prog          *program.Program
		from, reached string
		want          string
		wantSoft      bool
	}{
		{strict, "platinum", "blue", "blue", false},
		{soft, "platinum", "blue", "gold", true},
		{soft, "platinum", "silver", "gold", true},
		{soft, "platinum", "gold", "gold", false},
		{soft, "gold", "silver", "silver", false},
		{soft, "silver", "blue", "blue", false},
		{soft, "silver", "platinum", "platinum", false},
		{soft, "blue", "blue", "blue", false},
	} {
		got, s := tt.prog.Landing(tier(t, tt.prog, tt.from), tier(t, tt.prog, tt.reached))
		if got.ID != tt.want || s != tt.wantSoft {
			t.Errorf("soft %v: %s reaching %s lands on %s (soft %v), want %s (%v)",
				tt.prog.Requalification.SoftLanding, tt.from, tt.reached, got.ID, s, tt.want, tt.wantSoft)
		}
	}
}
