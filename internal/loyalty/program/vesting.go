package program

import (
	"fmt"
	"sort"
	"time"
)

// DefaultPurchaseVestingDays is how long purchase points pend when the
// program file says nothing: a typical 30-day return window.
const DefaultPurchaseVestingDays = 30

// maxVestingDays bounds a vesting period (a little over two years).
const maxVestingDays = 800

// Vesting says when each activity type's points vest: become spendable.
// Until then they are pending: shown to the member, worth nothing yet.
type Vesting struct {
	// ByType maps an activity type to its rule; a type not in it vests at
	// once.
	ByType map[string]VestingRule
}

// VestingRule is one activity type's vesting.
type VestingRule struct {
	// Days pend the points that many days after the activity occurred
	// (purchases: the return window). 0 adds no wait.
	Days int
	// UntilEventDate pends the points until the activity's own date when it
	// is in the future: a hotel stay's check-out date, a flight's date.
	// The points vest at the end of that day (00:00 UTC the day after).
	UntilEventDate bool
}

// DefaultVesting is the vesting of a program file without a vesting
// section: purchases pend DefaultPurchaseVestingDays, everything else
// vests at once.
func DefaultVesting() Vesting {
	return Vesting{ByType: map[string]VestingRule{ActivityPurchase: {Days: DefaultPurchaseVestingDays}}}
}

// VestsAt is when points of an activity of type typ that occurred at
// occurredAt vest, eventDate being the activity's own date (a hotel
// check-out, a flight date; zero when it has none). The result is zero when
// the points vest at once, at or before now.
func (v Vesting) VestsAt(typ string, occurredAt, eventDate, now time.Time) time.Time {
	r, ok := v.ByType[typ]
	if !ok {
		return time.Time{}
	}
	var at time.Time
	if r.Days > 0 {
		at = occurredAt.UTC().AddDate(0, 0, r.Days)
	}
	if r.UntilEventDate && !eventDate.IsZero() {
		y, m, d := eventDate.UTC().Date()
		if end := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC); end.After(at) {
			at = end
		}
	}
	if !at.After(now) {
		return time.Time{}
	}
	return at.UTC()
}

type rawVestingRule struct {
	Days           *int `yaml:"days"`
	UntilEventDate bool `yaml:"until_event_date"`
}

// vesting checks the vesting section: keys are activity types, days
// between 0 and maxVestingDays, until_event_date only for the types that
// carry a date (hotel, flight). Types left out keep the default (purchase
// 30 days, others at once).
func (c *checker) vesting(raw map[string]rawVestingRule) Vesting {
	v := DefaultVesting()
	types := make([]string, 0, len(raw))
	for typ := range raw {
		types = append(types, typ)
	}
	sort.Strings(types) // problems in a stable order
	for _, typ := range types {
		r := raw[typ]
		path := "vesting." + typ
		if !IsActivityType(typ) {
			c.add(path, "%q is not an activity type", typ)
			continue
		}
		rule := VestingRule{UntilEventDate: r.UntilEventDate}
		if r.Days != nil {
			rule.Days = *r.Days
		}
		if rule.Days < 0 || rule.Days > maxVestingDays {
			c.add(path+".days", "must be between 0 and %d", maxVestingDays)
		}
		if r.UntilEventDate && typ != ActivityHotel && typ != ActivityFlight {
			c.add(path+".until_event_date", "only hotel (check-out) and flight (flight date) activities carry a date")
		}
		if rule.Days == 0 && !rule.UntilEventDate {
			delete(v.ByType, typ)
			continue
		}
		v.ByType[typ] = rule
	}
	return v
}

// String describes the rule, for logs and docs.
func (r VestingRule) String() string {
	return fmt.Sprintf("days=%d until_event_date=%t", r.Days, r.UntilEventDate)
}
