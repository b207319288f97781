package loyalty

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// holdGrace is how long past its expiry a pending hold may wait for the
// hold reaper before Verify reports it.
const holdGrace = 5 * time.Minute

// Verify checks the ledger's invariants and returns one human-readable line
// per violation (none when the books are sound). It reads one consistent
// snapshot, so it may run while the service is busy.
//
//   - every transaction's postings sum to zero, and so does the whole ledger;
//   - no posting refers to a missing transaction;
//   - each member's cached balance plus pending equals the sum of the member
//     account's postings, and the balance_after of its postings chains;
//   - each member's pending equals its pending holds;
//   - each member's lots hold exactly the member's ledger balance, or
//     nothing while it is negative (lots are consumed at capture, so
//     pending points are still in lots; a debt is repaid by later credits
//     before they form lots);
//   - no promotion cap is exceeded;
//   - no hold is pending longer than holdGrace past its expiry (the reaper
//     voids them);
//   - a redemption or partner transfer succeeded exactly when its hold was
//     captured, and a successful redemption posted exactly its cost.
func (s *Service) Verify(ctx context.Context) ([]string, error) {
	tx, err := s.db.ReadSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("loyalty: verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	var problems []string
	checks := []struct {
		query  string
		format func(vals []any) string
		n      int
	}{
		{`SELECT transaction_id, SUM(amount) FROM loyalty_postings GROUP BY transaction_id HAVING SUM(amount) <> 0`,
			func(v []any) string { return fmt.Sprintf("transaction %s: postings sum to %s, not 0", v[0], v[1]) }, 2},
		{`SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings HAVING COALESCE(SUM(amount), 0) <> 0`,
			func(v []any) string { return fmt.Sprintf("ledger: all postings sum to %s, not 0", v[0]) }, 1},
		{`SELECT p.id, p.transaction_id FROM loyalty_postings p LEFT JOIN loyalty_transactions t ON t.id = p.transaction_id WHERE t.id IS NULL`,
			func(v []any) string { return fmt.Sprintf("posting %s: transaction %s does not exist", v[0], v[1]) }, 2},
		{`SELECT m.id, m.balance, m.held, COALESCE(SUM(p.amount), 0) FROM loyalty_members m
			LEFT JOIN loyalty_postings p ON p.account = 'member:' || m.id
			GROUP BY m.id, m.balance, m.held HAVING m.balance + m.held <> COALESCE(SUM(p.amount), 0)`,
			func(v []any) string {
				return fmt.Sprintf("member %s: cached balance %s + pending %s != %s, the sum of its postings", v[0], v[1], v[2], v[3])
			}, 4},
		{`SELECT account, id, balance_after, running FROM (
				SELECT account, id, balance_after, SUM(amount) OVER (PARTITION BY account ORDER BY id) AS running
				FROM loyalty_postings WHERE account LIKE 'member:%') x
			WHERE balance_after IS NULL OR balance_after <> running`,
			func(v []any) string {
				return fmt.Sprintf("account %s: posting %s has balance_after %s but the running sum is %s", v[0], v[1], v[2], v[3])
			}, 4},
		{`SELECT m.id, m.held, COALESCE(SUM(h.points), 0) FROM loyalty_members m
			LEFT JOIN loyalty_holds h ON h.member_id = m.id AND h.status = 'pending'
			GROUP BY m.id, m.held HAVING m.held <> COALESCE(SUM(h.points), 0)`,
			func(v []any) string {
				return fmt.Sprintf("member %s: pending %s != %s held by pending holds", v[0], v[1], v[2])
			}, 3},
		{`SELECT m.id, m.balance + m.held, COALESCE(SUM(l.remaining), 0) FROM loyalty_members m
			LEFT JOIN loyalty_lots l ON l.member_id = m.id
			GROUP BY m.id, m.balance, m.held
			HAVING CASE WHEN m.balance + m.held > 0 THEN m.balance + m.held ELSE 0 END <> COALESCE(SUM(l.remaining), 0)`,
			func(v []any) string {
				return fmt.Sprintf("member %s: ledger balance %s but %s remaining in lots (lots hold the balance, or nothing while it is negative)", v[0], v[1], v[2])
			}, 3},
		{`SELECT h.id, h.member_id FROM loyalty_holds h WHERE h.status = 'pending' AND h.expires_at <= $1`,
			func(v []any) string {
				return fmt.Sprintf("hold %s of member %s: still pending %s after its expiry (the hold reaper has not run)", v[0], v[1], holdGrace)
			}, 2},
		{`SELECT r.id, r.status, h.status FROM loyalty_redemptions r JOIN loyalty_holds h ON h.id = r.hold_id
			WHERE (r.status = 'success') <> (h.status = 'captured') OR (r.status = 'pending' AND h.status <> 'pending')`,
			func(v []any) string {
				return fmt.Sprintf("redemption %s: status %s but its hold is %s", v[0], v[1], v[2])
			}, 3},
		{`SELECT t.id, t.status, h.status FROM loyalty_transfers t JOIN loyalty_holds h ON h.id = t.hold_id
			WHERE (t.status = 'completed') <> (h.status = 'captured') OR (t.status = 'pending' AND h.status <> 'pending')`,
			func(v []any) string {
				return fmt.Sprintf("transfer %s: status %s but its hold is %s", v[0], v[1], v[2])
			}, 3},
		{`SELECT r.id, r.cost, COALESCE(-p.amount, 0) FROM loyalty_redemptions r
			LEFT JOIN loyalty_postings p ON p.transaction_id = r.transaction_id AND p.account = 'member:' || r.member_id
			WHERE r.status = 'success' AND COALESCE(-p.amount, 0) <> r.cost`,
			func(v []any) string {
				return fmt.Sprintf("redemption %s: cost %s but %s posted", v[0], v[1], v[2])
			}, 3},
		{`SELECT w.promotion_id, w.member_id, w.points, w.times FROM loyalty_promotion_awards w
			JOIN loyalty_promotions p ON p.id = w.promotion_id
			WHERE (p.cap_points > 0 AND w.points > p.cap_points) OR (p.cap_times > 0 AND w.times > p.cap_times)`,
			func(v []any) string {
				return fmt.Sprintf("promotion %s: member %s received %s points over %s activities, beyond its cap", v[0], v[1], v[2], v[3])
			}, 4},
	}
	// Holds past expiry are a problem only once the reaper has had time to run.
	overdue := db.Micros(s.now().Add(-holdGrace))
	for _, c := range checks {
		var args []any
		if strings.Contains(c.query, "$1") {
			args = append(args, overdue)
		}
		rows, err := tx.QueryContext(ctx, c.query, args...)
		if err != nil {
			return nil, fmt.Errorf("loyalty: verify: %w", err)
		}
		for rows.Next() {
			vals := make([]sql.NullString, c.n)
			ptrs := make([]any, c.n)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("loyalty: verify: %w", err)
			}
			out := make([]any, c.n)
			for i, v := range vals {
				out[i] = v.String
				if !v.Valid {
					out[i] = "NULL"
				}
			}
			problems = append(problems, c.format(out))
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, fmt.Errorf("loyalty: verify: %w", err)
		}
		rows.Close()
	}
	return problems, nil
}
