package program_test

import (
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

func utc(y int, m time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, m, d, h, mi, s, ns, time.UTC)
}

func day(y int, m time.Month, d int) time.Time { return utc(y, m, d, 0, 0, 0, 0) }

func TestAddMonths(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name string
		t    time.Time
		n    int
		want time.Time
	}{
		{"Jan 31 + 1 clamps to Feb 28", day(2025, 1, 31), 1, day(2025, 2, 28)},
		{"Jan 31 + 1 in a leap year", day(2024, 1, 31), 1, day(2024, 2, 29)},
		{"Jan 30 + 1 clamps too", day(2025, 1, 30), 1, day(2025, 2, 28)},
		{"Mar 31 + 1 clamps to Apr 30", day(2025, 3, 31), 1, day(2025, 4, 30)},
		{"Jan 31 + 2 keeps the day", day(2025, 1, 31), 2, day(2025, 3, 31)},
		{"Aug 31 - 6", day(2025, 8, 31), -6, day(2025, 2, 28)},
		{"across a year", day(2024, 12, 15), 1, day(2025, 1, 15)},
		{"back across a year", day(2025, 1, 15), -1, day(2024, 12, 15)},
		{"minus 13", day(2025, 1, 15), -13, day(2023, 12, 15)},
		{"Feb 29 + 24 months", day(2024, 2, 29), 24, day(2026, 2, 28)},
		{"Feb 29 + 48 months", day(2024, 2, 29), 48, day(2028, 2, 29)},
		{"zero", day(2025, 5, 5), 0, day(2025, 5, 5)},
		{"keeps time of day", utc(2025, 1, 31, 13, 45, 7, 999), 1, utc(2025, 2, 28, 13, 45, 7, 999)},
		// 23:30 EST on Jan 31 is 04:30 UTC on Feb 1; the rule works in UTC.
		{"works in UTC", time.Date(2025, 1, 31, 23, 30, 0, 0, est), 1, utc(2025, 3, 1, 4, 30, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := program.AddMonths(tt.t, tt.n)
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("AddMonths(%s, %d) = %s, want %s", tt.t, tt.n, got, tt.want)
			}
		})
	}
}

func TestQuarterEnd(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want time.Time
	}{
		{"first instant of Q1", day(2025, 1, 1), day(2025, 4, 1)},
		{"last instant of Q1", utc(2025, 3, 31, 23, 59, 59, 999999999), day(2025, 4, 1)},
		{"first instant of Q2", day(2025, 4, 1), day(2025, 7, 1)},
		{"mid Q2", day(2025, 5, 17), day(2025, 7, 1)},
		{"end of Q3", day(2025, 9, 30), day(2025, 10, 1)},
		{"Q4 rolls the year", day(2025, 10, 1), day(2026, 1, 1)},
		{"Dec 31", utc(2025, 12, 31, 12, 0, 0, 0), day(2026, 1, 1)},
		{"zone converted first", time.Date(2025, 3, 31, 22, 0, 0, 0, time.FixedZone("EST", -5*3600)), day(2025, 7, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := program.QuarterEnd(tt.t); !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("QuarterEnd(%s) = %s, want %s", tt.t, got, tt.want)
			}
		})
	}
}

func lotProgram(t *testing.T, months string) *program.Program {
	t.Helper()
	return mustParse(t, withEdits(t, "policy: inactivity\n  months: 24", "policy: lot\n  months: "+months))
}

func TestLotExpiry(t *testing.T) {
	tests := []struct {
		name     string
		months   string
		earnedAt time.Time
		want     time.Time
	}{
		{"mid quarter", "36", day(2024, 1, 15), day(2027, 4, 1)},
		{"last instant of a quarter", "36", utc(2024, 3, 31, 23, 59, 59, 0), day(2027, 4, 1)},
		{"first instant of a quarter", "36", day(2024, 4, 1), day(2027, 7, 1)},
		{"Dec 31 rolls the year", "36", day(2024, 12, 31), day(2028, 1, 1)},
		{"Jan 31 + 1 clamps into Feb", "1", day(2025, 1, 31), day(2025, 4, 1)},
		{"Nov 30 + 3 is leap Feb 29", "3", day(2023, 11, 30), day(2024, 4, 1)},
		{"Dec 31 + 2 clamps to Feb 28", "2", day(2025, 12, 31), day(2026, 4, 1)},
		{"Dec 31 + 3 is Mar 31", "3", day(2025, 12, 31), day(2026, 4, 1)},
		{"Jan 1 + 3 is Apr 1, next quarter", "3", day(2025, 1, 1), day(2025, 7, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := lotProgram(t, tt.months)
			if got := p.LotExpiry(tt.earnedAt); !got.Equal(tt.want) {
				t.Errorf("LotExpiry(%s) = %s, want %s", tt.earnedAt, got, tt.want)
			}
			if got := p.ExpiryFor(tt.earnedAt); !got.Equal(tt.want) {
				t.Errorf("ExpiryFor(%s) under lot policy = %s, want %s", tt.earnedAt, got, tt.want)
			}
		})
	}
}

func TestInactivityExpiry(t *testing.T) {
	p := program.Default()
	tests := []struct {
		name string
		last time.Time
		want time.Time
	}{
		{"to the instant", utc(2025, 1, 31, 10, 0, 0, 5), utc(2027, 1, 31, 10, 0, 0, 5)},
		{"leap day clamps", utc(2024, 2, 29, 10, 0, 0, 0), utc(2026, 2, 28, 10, 0, 0, 0)},
		{"no quarter rounding", day(2025, 5, 17), day(2027, 5, 17)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.InactivityExpiry(tt.last); !got.Equal(tt.want) {
				t.Errorf("InactivityExpiry(%s) = %s, want %s", tt.last, got, tt.want)
			}
			if got := p.ExpiryFor(tt.last); !got.Equal(tt.want) {
				t.Errorf("ExpiryFor(%s) under inactivity policy = %s, want %s", tt.last, got, tt.want)
			}
		})
	}
}

func TestIsExpired(t *testing.T) {
	e := day(2027, 4, 1)
	tests := []struct {
		now  time.Time
		want bool
	}{
		{e.Add(-time.Nanosecond), false},
		{e, true},
		{e.Add(time.Nanosecond), true},
		{e.In(time.FixedZone("EST", -5*3600)), true},
	}
	for _, tt := range tests {
		if got := program.IsExpired(e, tt.now); got != tt.want {
			t.Errorf("IsExpired(%s, %s) = %v, want %v", e, tt.now, got, tt.want)
		}
	}
}
