// Package bounds holds the documented maxima of the quantities Godwit stores
// (stock, reserved and ordered units, prices). Every edge that accepts one
// refuses a value outside its bound with a 400 invalid_field problem, and
// migration 00044 enforces the same bounds in the schema (CHECK constraints
// on PostgreSQL, triggers on SQLite), so sums of bounded values can never
// overflow a 64-bit integer: on SQLite an overflowing integer sum silently
// becomes a REAL that no int64 can be scanned from; on PostgreSQL it fails
// the statement ("bigint out of range").
package bounds

import "fmt"

const (
	// MaxStock is the most units of one product: available stock, one
	// reservation's units and one order line's units. Releasing a
	// reservation onto stock already near the bound saturates at it.
	MaxStock int64 = 1_000_000_000
	// MaxPriceAmount is the highest product price, in the currency's minor
	// units (10 billion dollars). With a cart's at most 100 lines of at most
	// 1,000 units a cart total stays below 10^17, far from the int64 limit.
	MaxPriceAmount int64 = 1_000_000_000_000
)

// ClampSQL is a SQL expression reading expr as a BIGINT within [lo, hi]: a
// value outside (on SQLite even a REAL left by an old overflow) reads as the
// nearer bound instead of failing the whole query. Reads that serve
// customers use it so one damaged row cannot take a listing down; verify
// reports the row itself.
func ClampSQL(expr string, lo, hi int64) string {
	return fmt.Sprintf("(CASE WHEN %[1]s < %[2]d THEN %[2]d WHEN %[1]s > %[3]d THEN %[3]d ELSE CAST(%[1]s AS BIGINT) END)", expr, lo, hi)
}
