package checkout

import (
	"context"
	"fmt"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// ErasePersonalData clears the email of every checkout of member memberID
// and of every guest checkout to email (compared without case), in tx, and
// reports how many it cleared. The rows stay, for accounting, verify and a
// replay of their Idempotency-Key (verify reads no cleared checkout's
// email). A checkout of either still in progress is errs Conflict
// CodeCheckoutInProgress and nothing is cleared: the saga holds the email in
// memory and would queue its confirmation after the scrub. memberID or email may be
// empty (not looked for).
func ErasePersonalData(ctx context.Context, tx *db.Tx, memberID, email string) (int64, error) {
	const whose = `((member_id <> '' AND member_id = $1) OR ($2 <> '' AND email <> '' AND lower(email) = lower($2)))`
	var running int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM checkouts WHERE state = 'in_progress' AND `+whose, memberID, email).Scan(&running); err != nil {
		return 0, fmt.Errorf("checkout: erase personal data: %w", err)
	}
	if running > 0 {
		return 0, errs.Coded(errs.Conflict, CodeCheckoutInProgress,
			"%d checkout(s) of this person are still in progress; erase once they have finished", running)
	}
	res, err := tx.ExecContext(ctx, `UPDATE checkouts SET email = '' WHERE email <> '' AND `+whose, memberID, email)
	if err != nil {
		return 0, fmt.Errorf("checkout: erase personal data: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
