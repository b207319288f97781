package program

import (
	"strings"
	"testing"
	"time"
)

func TestVestingDefaults(t *testing.T) {
	p := Default()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	if got, want := p.Vesting.VestsAt(ActivityPurchase, now, time.Time{}, now), now.AddDate(0, 0, 30); !got.Equal(want) {
		t.Errorf("purchase vests at %v, want %v", got, want)
	}
	if got := p.Vesting.VestsAt(ActivityCardSpend, now, time.Time{}, now); !got.IsZero() {
		t.Errorf("card spend vests at %v, want at once", got)
	}
	// Hotel and flight without a date vest at once (today's behaviour).
	for _, typ := range []string{ActivityHotel, ActivityFlight} {
		if got := p.Vesting.VestsAt(typ, now, time.Time{}, now); !got.IsZero() {
			t.Errorf("%s without a date vests at %v, want at once", typ, got)
		}
	}
	// A check-out or flight date in the future: the end of that day.
	future := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	for _, typ := range []string{ActivityHotel, ActivityFlight} {
		if got, want := p.Vesting.VestsAt(typ, now, future, now), time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
			t.Errorf("%s with date %v vests at %v, want %v", typ, future, got, want)
		}
	}
	// A date already past: at once.
	if got := p.Vesting.VestsAt(ActivityHotel, now, now.AddDate(0, 0, -3), now); !got.IsZero() {
		t.Errorf("hotel with a past check-out vests at %v, want at once", got)
	}
	// A retro-credited purchase older than its window: at once.
	if got := p.Vesting.VestsAt(ActivityPurchase, now.AddDate(0, 0, -31), time.Time{}, now); !got.IsZero() {
		t.Errorf("old purchase vests at %v, want at once", got)
	}
}

func TestVestingWithoutSectionIsDefault(t *testing.T) {
	y := strings.Replace(string(DefaultYAML()), "vesting:\n  purchase:\n    days: 30\n  hotel:\n    until_event_date: true\n  flight:\n    until_event_date: true\n", "", 1)
	if y == string(DefaultYAML()) {
		t.Fatal("default.yaml's vesting section not found")
	}
	p, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Vesting.ByType[ActivityPurchase].Days; got != DefaultPurchaseVestingDays {
		t.Errorf("purchase days %d, want %d", got, DefaultPurchaseVestingDays)
	}
	if len(p.Vesting.ByType) != 1 {
		t.Errorf("vesting %v, want purchase only", p.Vesting.ByType)
	}
}

func TestVestingSettings(t *testing.T) {
	base := strings.Replace(string(DefaultYAML()), "vesting:\n  purchase:\n    days: 30\n  hotel:\n    until_event_date: true\n  flight:\n    until_event_date: true\n", "", 1)
	p, err := Parse([]byte(base + "vesting:\n  purchase: {days: 0}\n  card_spend: {days: 7}\n  hotel: {days: 2, until_event_date: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	if got := p.Vesting.VestsAt(ActivityPurchase, now, time.Time{}, now); !got.IsZero() {
		t.Errorf("purchase with days 0 vests at %v, want at once", got)
	}
	if got, want := p.Vesting.VestsAt(ActivityCardSpend, now, time.Time{}, now), now.AddDate(0, 0, 7); !got.Equal(want) {
		t.Errorf("card spend vests at %v, want %v", got, want)
	}
	// Both: the later of occurred+days and the end of the check-out day.
	if got, want := p.Vesting.VestsAt(ActivityHotel, now, now, now), now.AddDate(0, 0, 2); !got.Equal(want) {
		t.Errorf("hotel vests at %v, want %v", got, want)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"vesting:\n  purchase: {days: -1}\n", "vesting.purchase.days"},
		{"vesting:\n  purchase: {days: 900}\n", "vesting.purchase.days"},
		{"vesting:\n  rental: {days: 3}\n", "vesting.rental"},
		{"vesting:\n  purchase: {until_event_date: true}\n", "vesting.purchase.until_event_date"},
		{"vesting:\n  purchase: {weeks: 2}\n", "weeks"},
	} {
		_, err := Parse([]byte(base + bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want one naming %s", bad.yaml, err, bad.want)
		}
	}
}
