package program

import "time"

// Expiry instants follow one convention throughout: a point with expiry E is
// spendable at every instant before E and expired at every instant at or
// after E. E is always in UTC. IsExpired states it in code.

// IsExpired reports whether something with the expiry instant has expired at
// now: true at and after the instant.
func IsExpired(expiresAt, now time.Time) bool {
	return !now.Before(expiresAt)
}

// AddMonths adds n calendar months to t in UTC, keeping the time of day. When
// the day does not exist in the target month it is clamped to that month's
// last day: Jan 31 + 1 month is Feb 28 (Feb 29 in a leap year), and Aug 31 −
// 6 months is Feb 28. Clamping, unlike time.AddDate's normalisation (which
// turns Jan 31 + 1 month into Mar 3), never skips past the target month, so a
// member always gets at least the promised number of calendar months.
func AddMonths(t time.Time, n int) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	total := int(m) - 1 + n
	y += floorDiv(total, 12)
	month := time.Month(total - floorDiv(total, 12)*12 + 1)
	if last := daysIn(y, month); d > last {
		d = last
	}
	return time.Date(y, month, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// QuarterEnd returns the end of t's calendar quarter (UTC) as an expiry
// instant: 00:00:00 UTC on the first day of the next quarter. By the
// convention above, something expiring then is still valid through the last
// nanosecond of the quarter (23:59:59.999999999 on Mar 31, Jun 30, Sep 30 or
// Dec 31). An instant exactly at a quarter's start belongs to that quarter.
func QuarterEnd(t time.Time) time.Time {
	t = t.UTC()
	firstMonthOfNext := time.Month((int(t.Month())-1)/3*3 + 4) // 13 normalises to January
	return time.Date(t.Year(), firstMonthOfNext, 1, 0, 0, 0, 0, time.UTC)
}

// LotExpiry is the expiry of a lot earned at earnedAt under the lot policy:
// AddMonths(earnedAt, Months), then extended to the end of that quarter
// (QuarterEnd). Rounding to quarters gives members a predictable date and
// lets the expiry job work in four large batches a year.
func (p *Program) LotExpiry(earnedAt time.Time) time.Time {
	return QuarterEnd(AddMonths(earnedAt, p.Expiry.Months))
}

// InactivityExpiry is when a member's points expire under the inactivity
// policy if lastActivity is their last earning or redeeming activity:
// AddMonths(lastActivity, Months), to the instant.
func (p *Program) InactivityExpiry(lastActivity time.Time) time.Time {
	return AddMonths(lastActivity, p.Expiry.Months)
}

// ExpiryFor is the expiry of a lot earned at earnedAt under the program's
// policy. Under the inactivity policy the earning is itself activity, so the
// lot's first expiry is InactivityExpiry(earnedAt); later activity pushes the
// member's lots back, which is the service's job.
func (p *Program) ExpiryFor(earnedAt time.Time) time.Time {
	if p.Expiry.Policy == ExpiryLot {
		return p.LotExpiry(earnedAt)
	}
	return p.InactivityExpiry(earnedAt)
}
