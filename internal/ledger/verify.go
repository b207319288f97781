package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Check is one invariant: Query returns a row per violation, which Format
// turns into a line (NULL columns read "NULL").
type Check struct {
	Query  string
	Args   []any
	Format func(v []string) string
}

// Checks are the ledger's own invariants, for a snapshot taken at now:
//
//   - every transaction's postings sum to zero, and so does the whole ledger;
//   - no posting refers to a missing transaction;
//   - each member's cached balance plus held equals the sum of the member
//     account's postings, and the balance_after of its postings chains;
//   - each member's held points equal its pending holds;
//   - each member's lots hold exactly the member's ledger balance, or
//     nothing while it is negative;
//   - no hold is pending longer than grace past its expiry (a reaper is
//     expected to void them).
func Checks(now time.Time, grace time.Duration) []Check {
	return []Check{
		{Query: `SELECT transaction_id, SUM(amount) FROM loyalty_postings GROUP BY transaction_id HAVING SUM(amount) <> 0`,
			Format: func(v []string) string { return fmt.Sprintf("transaction %s: postings sum to %s, not 0", v[0], v[1]) }},
		{Query: `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings HAVING COALESCE(SUM(amount), 0) <> 0`,
			Format: func(v []string) string { return fmt.Sprintf("ledger: all postings sum to %s, not 0", v[0]) }},
		{Query: `SELECT p.id, p.transaction_id FROM loyalty_postings p LEFT JOIN loyalty_transactions t ON t.id = p.transaction_id WHERE t.id IS NULL`,
			Format: func(v []string) string { return fmt.Sprintf("posting %s: transaction %s does not exist", v[0], v[1]) }},
		{Query: `SELECT m.id, m.balance, m.held, COALESCE(SUM(p.amount), 0) FROM loyalty_members m
			LEFT JOIN loyalty_postings p ON p.account = 'member:' || m.id
			GROUP BY m.id, m.balance, m.held HAVING m.balance + m.held <> COALESCE(SUM(p.amount), 0)`,
			Format: func(v []string) string {
				return fmt.Sprintf("member %s: cached balance %s + pending %s != %s, the sum of its postings", v[0], v[1], v[2], v[3])
			}},
		{Query: `SELECT account, id, balance_after, running FROM (
				SELECT account, id, balance_after, SUM(amount) OVER (PARTITION BY account ORDER BY id) AS running
				FROM loyalty_postings WHERE account LIKE 'member:%') x
			WHERE balance_after IS NULL OR balance_after <> running`,
			Format: func(v []string) string {
				return fmt.Sprintf("account %s: posting %s has balance_after %s but the running sum is %s", v[0], v[1], v[2], v[3])
			}},
		{Query: `SELECT m.id, m.held, COALESCE(SUM(h.points), 0) FROM loyalty_members m
			LEFT JOIN loyalty_holds h ON h.member_id = m.id AND h.status = 'pending'
			GROUP BY m.id, m.held HAVING m.held <> COALESCE(SUM(h.points), 0)`,
			Format: func(v []string) string {
				return fmt.Sprintf("member %s: pending %s != %s held by pending holds", v[0], v[1], v[2])
			}},
		{Query: `SELECT m.id, m.balance + m.held, COALESCE(SUM(l.remaining), 0) FROM loyalty_members m
			LEFT JOIN loyalty_lots l ON l.member_id = m.id
			GROUP BY m.id, m.balance, m.held
			HAVING CASE WHEN m.balance + m.held > 0 THEN m.balance + m.held ELSE 0 END <> COALESCE(SUM(l.remaining), 0)`,
			Format: func(v []string) string {
				return fmt.Sprintf("member %s: ledger balance %s but %s remaining in lots (lots hold the balance, or nothing while it is negative)", v[0], v[1], v[2])
			}},
		{Query: `SELECT h.id, h.member_id FROM loyalty_holds h WHERE h.status = 'pending' AND h.expires_at <= $1`,
			Args: []any{db.Micros(now.Add(-grace))},
			Format: func(v []string) string {
				return fmt.Sprintf("hold %s of member %s: still pending %s after its expiry (the hold reaper has not run)", v[0], v[1], grace)
			}},
	}
}

// Verify runs checks and returns one line per violation (none when the
// books are sound). Run on a read snapshot, it may run while the books are
// being written.
func Verify(ctx context.Context, q Querier, checks []Check) ([]string, error) {
	var problems []string
	for _, c := range checks {
		found, err := runCheck(ctx, q, c)
		if err != nil {
			return nil, fmt.Errorf("ledger: verify: %w", err)
		}
		problems = append(problems, found...)
	}
	return problems, nil
}

func runCheck(ctx context.Context, q Querier, c Check) ([]string, error) {
	rows, err := q.QueryContext(ctx, c.Query, c.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var found []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out := make([]string, len(cols))
		for i, v := range vals {
			out[i] = v.String
			if !v.Valid {
				out[i] = "NULL"
			}
		}
		found = append(found, c.Format(out))
	}
	return found, rows.Err()
}
