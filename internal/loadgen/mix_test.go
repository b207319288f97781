package loadgen_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loadgen"
)

func TestParseMix(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]int
		wantErr string
	}{
		{name: "issue example", in: "checkout=30,earn=40,redeem=15,transfer=5,browse=10",
			want: map[string]int{"checkout": 30, "earn": 40, "redeem": 15, "transfer": 5, "browse": 10}},
		{name: "empty is the default", in: "  ", want: loadgen.DefaultMix()},
		{name: "subset, spaces, case, trailing comma", in: " Earn = 3 , browse=1,", want: map[string]int{"earn": 3, "browse": 1}},
		{name: "zero weight kept", in: "earn=1,redeem=0", want: map[string]int{"earn": 1, "redeem": 0}},
		{name: "unknown operation", in: "earn=1,fly=2", wantErr: `unknown operation "fly"`},
		{name: "missing equals", in: "earn", wantErr: "want operation=weight"},
		{name: "negative", in: "earn=-1,browse=1", wantErr: "out of range"},
		{name: "not a number", in: "earn=lots", wantErr: "not a whole number"},
		{name: "fraction", in: "earn=0.5", wantErr: "not a whole number"},
		{name: "duplicate", in: "earn=1,earn=2", wantErr: "given twice"},
		{name: "all zero", in: "earn=0,browse=0", wantErr: "no operation has a positive weight"},
		{name: "huge", in: "earn=99999999999", wantErr: "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadgen.ParseMix(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseMix(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMix(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseMix(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestFormatMixRoundTrips(t *testing.T) {
	s := loadgen.FormatMix(loadgen.DefaultMix())
	if s != "browse=10,checkout=30,earn=40,redeem=15,transfer=5" {
		t.Fatalf("FormatMix(default) = %q", s)
	}
	back, err := loadgen.ParseMix(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(loadgen.DefaultMix(), back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
