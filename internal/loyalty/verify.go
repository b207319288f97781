package loyalty

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/ledger"
)

// holdGrace is how long past its expiry a pending hold may wait for the
// hold reaper before Verify reports it.
const holdGrace = 5 * time.Minute

// Verify checks the books' invariants and returns one human-readable line
// per violation (none when the books are sound). It reads one consistent
// snapshot, so it may run while the service is busy. It runs the ledger's
// own checks (ledger.Checks: postings sum to zero, cached balances, holds
// and lots match the postings, no hold overdue for the reaper), then the
// program's:
//
//   - a redemption or partner transfer succeeded exactly when its hold was
//     captured, and a successful redemption posted exactly its cost;
//   - no promotion cap is exceeded, and no promotion's budget counts more
//     spent than its awards.
func (s *Service) Verify(ctx context.Context) ([]string, error) {
	tx, err := s.db.ReadSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("loyalty: verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	problems, err := ledger.Verify(ctx, tx, append(append(ledger.Checks(s.now(), holdGrace), programChecks...), pendingChecks...))
	if err != nil {
		return nil, fmt.Errorf("loyalty: verify: %w", err)
	}
	return problems, nil
}

// programChecks are the invariants of redemptions, transfers and promotions.
var programChecks = []ledger.Check{
	{Query: `SELECT r.id, r.status, h.status FROM loyalty_redemptions r JOIN loyalty_holds h ON h.id = r.hold_id
			WHERE (r.status = 'success') <> (h.status = 'captured') OR (r.status = 'pending' AND h.status <> 'pending')`,
		Format: func(v []string) string {
			return fmt.Sprintf("redemption %s: status %s but its hold is %s", v[0], v[1], v[2])
		}},
	{Query: `SELECT t.id, t.status, h.status FROM loyalty_transfers t JOIN loyalty_holds h ON h.id = t.hold_id
			WHERE (t.status = 'completed') <> (h.status = 'captured') OR (t.status = 'pending' AND h.status <> 'pending')`,
		Format: func(v []string) string {
			return fmt.Sprintf("transfer %s: status %s but its hold is %s", v[0], v[1], v[2])
		}},
	{Query: `SELECT r.id, r.cost, COALESCE(-p.amount, 0) FROM loyalty_redemptions r
			LEFT JOIN loyalty_postings p ON p.transaction_id = r.transaction_id AND p.account = 'member:' || r.member_id
			WHERE r.status = 'success' AND COALESCE(-p.amount, 0) <> r.cost`,
		Format: func(v []string) string {
			return fmt.Sprintf("redemption %s: cost %s but %s posted", v[0], v[1], v[2])
		}},
	{Query: `SELECT w.promotion_id, w.member_id, w.points, w.times FROM loyalty_promotion_awards w
			JOIN loyalty_promotions p ON p.id = w.promotion_id
			WHERE (p.cap_points > 0 AND w.points > p.cap_points) OR (p.cap_times > 0 AND w.times > p.cap_times)`,
		Format: func(v []string) string {
			return fmt.Sprintf("promotion %s: member %s received %s points over %s activities, beyond its cap", v[0], v[1], v[2], v[3])
		}},
	{Query: `SELECT p.id, p.budget_spent, COALESCE(SUM(w.points), 0) FROM loyalty_promotions p
			LEFT JOIN loyalty_promotion_awards w ON w.promotion_id = p.id
			WHERE p.budget_points > 0 GROUP BY p.id, p.budget_spent HAVING p.budget_spent > COALESCE(SUM(w.points), 0)`,
		Format: func(v []string) string {
			return fmt.Sprintf("promotion %s: budget counts %s points spent but its awards stand at %s", v[0], v[1], v[2])
		}},
}
