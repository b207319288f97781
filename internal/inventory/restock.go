package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/godwit-dev/godwit/internal/bounds"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// ReturnUnits puts units of a committed reservation back in stock: the
// order that took them cancelled them at fulfilment. Each line is returned
// once (its returned quantity is recorded), so calling again, with the same
// items, changes nothing; the units returned never exceed those reserved.
// A reservation that is not committed, or an item it does not hold, is errs
// Conflict "reservation_not_committed" / Unprocessable "invalid_return".
func (s *Service) ReturnUnits(ctx context.Context, reservationID string, items []Item) error {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b Item) int { return strings.Compare(a.ProductID, b.ProductID) }) // the lock order of Reserve
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM reservations WHERE id = $1`+tx.ForUpdate(), reservationID).Scan(&state); err != nil {
			return fmt.Errorf("inventory: return units of %s: %w", reservationID, err)
		}
		if state != StateCommitted {
			return errs.Coded(errs.Conflict, "reservation_not_committed", "reservation %s is %s, not committed", reservationID, state)
		}
		now := db.Micros(s.now())
		for _, it := range sorted {
			if it.Quantity <= 0 {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE reservation_items SET returned_quantity = $3
				WHERE reservation_id = $1 AND product_id = $2 AND returned_quantity = 0 AND quantity >= $3`, reservationID, it.ProductID, it.Quantity)
			if err != nil {
				return fmt.Errorf("inventory: return units of %s: %w", reservationID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var returned int64
				err := tx.QueryRowContext(ctx, `SELECT returned_quantity FROM reservation_items WHERE reservation_id = $1 AND product_id = $2`,
					reservationID, it.ProductID).Scan(&returned)
				if err != nil || returned != it.Quantity {
					return errs.Coded(errs.Unprocessable, "invalid_return", "reservation %s cannot return %d of %s", reservationID, it.Quantity, it.ProductID)
				}
				continue // returned before
			}
			if _, err := tx.ExecContext(ctx, `UPDATE inventory SET available = CASE WHEN available > CAST($3 AS BIGINT) - CAST($1 AS BIGINT) THEN $3 ELSE available + $1 END,
				updated_at = $4 WHERE product_id = $2`, it.Quantity, it.ProductID, bounds.MaxStock, now); err != nil {
				return fmt.Errorf("inventory: restock %s: %w", it.ProductID, err)
			}
		}
		return nil
	})
}
