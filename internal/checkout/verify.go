package checkout

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/godwit-dev/godwit/internal/bounds"
	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Verify checks the shop's invariants and returns one readable line per
// violation. Each check is one query, linear in its tables:
//   - every successful simulator charge belongs to an order (or was voided or
//     refunded), and every paid order points at exactly one live charge;
//   - units taken from stock are accounted for: per product, committed
//     reservations equal the quantities on live orders;
//   - no reservation is still held, and no checkout still in progress, past
//     its expiry plus grace (meaningful once the reaper and recovery have run),
//     unless it belongs to a checkout in flight (see leasedInvariants);
//   - with manual capture, an authorized order's charge is still an
//     authorisation; a fulfilled order captured exactly its authorisation
//     less the cancelled lines (at most all of it), its charge holds that
//     amount (or was voided when nothing was captured), and it gave points
//     back only for cancelled value beyond the card part, never more than
//     were spent;
//   - every confirmed order of a checkout with an email has exactly one
//     confirmation in the outbox, and none has two;
//   - no stored quantity is impossible: stock, reserved and ordered units,
//     cart lines and prices within their bounds (internal/bounds), which the
//     schema enforces only on rows written since migration 00044.
//
// grace allows for jobs that have not yet run; pass 0 right after running them.
func (s *Service) Verify(ctx context.Context, grace time.Duration) ([]string, error) {
	tx, err := s.cfg.DB.ReadSnapshot(ctx) // one snapshot for every check
	if err != nil {
		return nil, fmt.Errorf("checkout: verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	cutoff := db.Micros(s.cfg.Now().Add(-grace))
	// A checkout whose lease ran out less than one lease ago is left to its
	// client's retry before the recovery pass takes it: still in flight.
	leaseCutoff := db.Micros(s.cfg.Now().Add(-grace - s.cfg.Lease))
	var problems []string
	for _, c := range slices.Concat(invariants, captureInvariants, boundsInvariants, leasedInvariants) {
		var args []any
		switch c.params {
		case expiryParam:
			args = []any{cutoff}
		case leaseParam:
			args = []any{leaseCutoff}
		case expiryAndLeaseParams:
			args = []any{cutoff, leaseCutoff}
		}
		lines, err := c.run(ctx, tx, args)
		if err != nil {
			return nil, fmt.Errorf("checkout: verify: %w", err)
		}
		problems = append(problems, lines...)
	}
	return problems, nil
}

// invariant is one of Verify's checks: a query whose every row (up to three
// columns) is a violation, described by line. params says which cutoffs the
// query takes.
type invariant struct {
	query  string
	params params
	line   func(v []any) string
}

// params names the placeholders of an invariant's query.
type params int

const (
	noParams params = iota
	// expiryParam: $1 is now less the grace.
	expiryParam
	// leaseParam: $1 is the in-flight cutoff, now less the grace and one
	// lease more.
	leaseParam
	// expiryAndLeaseParams: $1 is the expiry cutoff and $2 the in-flight one.
	expiryAndLeaseParams
)

// inFlightCheckout is the condition, on a checkout id expression, that it
// names a checkout in flight; param is the placeholder of the in-flight cutoff.
// A checkout waiting for authentication is in flight until its window ends
// (and one lease more, for the recovery pass to settle it).
func inFlightCheckout(id, param string) string {
	return `EXISTS (SELECT 1 FROM checkouts f WHERE f.id = ` + id + ` AND ((f.state = 'in_progress' AND f.lease_until >= ` + param + `)
		OR (f.state = 'requires_action' AND f.action_expires_at >= ` + param + `)))`
}

// invariants are Verify's checks. FULL OUTER JOIN runs on both engines
// (SQLite since 3.39).
var invariants = []invariant{
	{`SELECT o.id, o.status, o.charge_id FROM orders o
		WHERE o.charged_amount > 0 AND o.status IN ('paid', 'confirmed', 'partially_refunded')
		AND NOT EXISTS (SELECT 1 FROM payment_charges c WHERE c.id = o.charge_id AND c.status IN ('succeeded', 'partially_refunded'))
		AND EXISTS (SELECT 1 FROM payment_charges) -- charges are local only with the simulator; Stripe keeps its own`, noParams,
		func(v []any) string {
			return fmt.Sprintf("order %s (%s): charge %q is not a live charge", v[0], v[1], v[2])
		}},
	{`SELECT charge_id, COUNT(*) FROM orders WHERE charge_id <> '' GROUP BY charge_id HAVING COUNT(*) > 1`, noParams,
		func(v []any) string { return fmt.Sprintf("charge %s: taken by %s orders", v[0], v[1]) }},
	{`SELECT o.id FROM orders o JOIN checkouts c ON c.id = o.checkout_id
		WHERE o.status = 'confirmed' AND c.email <> '' AND o.created_at <= $1
		AND NOT EXISTS (SELECT 1 FROM outbox m WHERE m.kind = 'order_confirmation' AND m.reference = o.id)`, expiryParam,
		func(v []any) string { return fmt.Sprintf("order %s: confirmed without a queued confirmation", v[0]) }},
	{`SELECT reference, COUNT(*) FROM outbox WHERE kind = 'order_confirmation' GROUP BY reference HAVING COUNT(*) > 1`, noParams,
		func(v []any) string { return fmt.Sprintf("order %s: %s confirmations queued", v[0], v[1]) }},
}

// cancelledValue is the value of an order's cancelled units, for o.
const cancelledValue = `(SELECT COALESCE(SUM(oi.cancelled_quantity * oi.unit_price_amount), 0) FROM order_items oi WHERE oi.order_id = o.id)`

// captureInvariants check orders of manual capture (fulfil.go).
var captureInvariants = []invariant{
	{`SELECT o.id, o.charge_id, c.status FROM orders o JOIN payment_charges c ON c.id = o.charge_id
		WHERE o.status = 'authorized' AND o.fulfilment = '' AND c.status <> 'authorized'`, noParams,
		func(v []any) string {
			return fmt.Sprintf("order %s (authorized): charge %s is %s, not an authorisation", v[0], v[1], v[2])
		}},
	{`SELECT o.id, o.charged_amount, o.authorized_amount FROM orders o WHERE o.fulfilment = 'done'
		AND o.charged_amount <> o.authorized_amount - CASE WHEN ` + cancelledValue + ` < o.authorized_amount THEN ` + cancelledValue + ` ELSE o.authorized_amount END`, noParams,
		func(v []any) string {
			return fmt.Sprintf("order %s: captured %s of %s authorised, not the authorisation less its cancelled lines", v[0], v[1], v[2])
		}},
	{`SELECT o.id, o.charged_amount, c.status FROM orders o JOIN payment_charges c ON c.id = o.charge_id WHERE o.fulfilment = 'done'
		AND ((o.charged_amount > 0 AND c.amount <> o.charged_amount) OR (o.charged_amount = 0 AND c.status <> 'voided'))`, noParams,
		func(v []any) string {
			return fmt.Sprintf("order %s: captured %s but its charge is %s for another amount", v[0], v[1], v[2])
		}},
	{`SELECT o.id, o.points_returned, o.points_redeemed FROM orders o WHERE o.points_returned < 0 OR o.points_returned > o.points_redeemed
		OR (o.points_returned > 0 AND ` + cancelledValue + ` <= o.authorized_amount)`, noParams,
		func(v []any) string {
			return fmt.Sprintf("order %s: %s points given back of %s spent, beyond what its cancelled lines were worth", v[0], v[1], v[2])
		}},
	{`SELECT o.id, o.updated_at FROM orders o WHERE o.fulfilment = 'started' AND o.updated_at < $1`, expiryParam,
		func(v []any) string {
			return fmt.Sprintf("order %s: fulfilment started and not finished; fulfil it again", v[0])
		}},
}

// unitsInBounds keeps rows out of bounds (reported by boundsInvariants) out
// of the unit sums: a sum over one of them could overflow, which fails the
// query on SQLite and PostgreSQL alike and would hide every other finding.
func unitsInBounds(col string) string {
	return fmt.Sprintf("%s BETWEEN 1 AND %d", col, bounds.MaxStock)
}

// outOfBounds is a check for rows whose col lies outside [lo, hi] (on SQLite
// also a value that is not an integer at all: a REAL left by an overflow).
func outOfBounds(table, key, col string, lo, hi int64) invariant {
	q := fmt.Sprintf(`SELECT %[1]s, %[2]s FROM %[3]s WHERE NOT (%[2]s BETWEEN %[4]d AND %[5]d) OR CAST(%[2]s AS BIGINT) <> %[2]s`,
		key, col, table, lo, hi)
	return invariant{query: q, line: func(v []any) string {
		return fmt.Sprintf("%s %s: %s %s is impossible (bounds %d to %d)", table, v[0], col, v[1], lo, hi)
	}}
}

// boundsInvariants name every stored quantity outside its documented bound.
var boundsInvariants = []invariant{
	outOfBounds("inventory", "product_id", "available", 0, bounds.MaxStock),
	outOfBounds("reservation_items", "reservation_id || '/' || product_id", "quantity", 1, bounds.MaxStock),
	outOfBounds("order_items", "order_id || '/' || product_id", "quantity", 1, bounds.MaxStock),
	outOfBounds("cart_items", "cart_id || '/' || product_id", "quantity", 1, cart.MaxQuantity),
	outOfBounds("products", "id", "price_amount", 0, bounds.MaxPriceAmount),
}

// leasedInvariants are the checks that involve checkouts' leases, given the
// in-flight cutoff (Verify): the effects of a checkout in flight — in
// progress under a lease that runs, or ran out less than one lease ago — are
// not violations (inFlight reports them), and a checkout still in progress
// past that is.
var leasedInvariants = []invariant{
	// A checkout's reservation (its reference is the checkout id) may expire
	// while the checkout is in flight: its owner died and the reaper has not
	// run yet, or the reservation TTL is shorter than the lease and the retry
	// window. The reaper or the checkout's settling releases it; once the
	// checkout is no longer in flight, a reservation held past its expiry is
	// a violation again.
	{`SELECT r.id, r.expires_at FROM reservations r WHERE r.state = 'held' AND r.expires_at < $1
		AND NOT ` + inFlightCheckout("r.reference", "$2"), expiryAndLeaseParams,
		func(v []any) string { return fmt.Sprintf("reservation %s: still held past its expiry", v[0]) }},
	{`SELECT c.id, c.status, c.amount FROM payment_charges c
		WHERE c.status IN ('succeeded', 'partially_refunded', 'authorized')
		AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.charge_id = c.id)
		AND NOT ` + inFlightCheckout("c.idempotency_key", "$1"), leaseParam,
		func(v []any) string { return fmt.Sprintf("charge %s (%s, %s): no order took it", v[0], v[1], v[2]) }},
	{`SELECT COALESCE(r.product_id, o.product_id), COALESCE(r.qty, 0), COALESCE(o.qty, 0) FROM
		(SELECT ri.product_id, SUM(ri.quantity - ri.returned_quantity) AS qty FROM reservation_items ri
			JOIN reservations rs ON rs.id = ri.reservation_id WHERE rs.state = 'committed'
			AND ` + unitsInBounds("ri.quantity") + ` AND NOT ` + inFlightCheckout("rs.reference", "$1") + ` GROUP BY ri.product_id) r
		FULL OUTER JOIN
		(SELECT oi.product_id, SUM(oi.quantity - CASE WHEN o.fulfilment = 'done' THEN oi.cancelled_quantity ELSE 0 END) AS qty FROM order_items oi
			JOIN orders o ON o.id = oi.order_id WHERE o.status <> 'cancelled'
			AND ` + unitsInBounds("oi.quantity") + ` AND NOT ` + inFlightCheckout("o.checkout_id", "$1") + ` GROUP BY oi.product_id) o
		ON o.product_id = r.product_id
		WHERE COALESCE(r.qty, 0) <> COALESCE(o.qty, 0)`, leaseParam,
		func(v []any) string {
			return fmt.Sprintf("product %s: %s units committed from stock but %s on orders", v[0], v[1], v[2])
		}},
	{`SELECT id, step FROM checkouts WHERE state = 'in_progress' AND lease_until < $1`, leaseParam,
		func(v []any) string {
			return fmt.Sprintf("checkout %s: still in progress at step %s past its lease", v[0], v[1])
		}},
	{`SELECT id, charge_id FROM checkouts WHERE state = 'requires_action' AND action_expires_at < $1`, leaseParam,
		func(v []any) string {
			return fmt.Sprintf("checkout %s: still waiting for authentication of charge %s past its window", v[0], v[1])
		}},
}

// run returns one line per row of the check's query.
func (c invariant) run(ctx context.Context, tx *sql.Tx, args []any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, c.query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var a, b, cc sql.NullString
		dest := []any{&a, &b, &cc}
		cols, _ := rows.Columns()
		if err := rows.Scan(dest[:len(cols)]...); err != nil {
			return nil, err
		}
		vals := make([]any, len(cols))
		for i := range cols {
			vals[i] = dest[i].(*sql.NullString).String
		}
		lines = append(lines, c.line(vals))
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return lines, rows.Err()
}
