package loyalty_test

import (
	"context"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestVerifyFindsDamage: each kind of damage to the books is reported.
func TestVerifyFindsDamage(t *testing.T) {
	for _, c := range []struct {
		name, sql, want string
	}{
		{"cached balance", `UPDATE loyalty_members SET balance = balance + 1 WHERE id = 'm'`, "cached balance"},
		{"unbalanced transaction", `UPDATE loyalty_postings SET amount = amount + 5 WHERE account = 'program:issuance'`, "postings sum to"},
		{"broken chain", `UPDATE loyalty_postings SET balance_after = 7 WHERE account = 'member:m'`, "running sum"},
		{"lots", `UPDATE loyalty_lots SET remaining = remaining - 1`, "remaining in lots"},
		{"pending", `UPDATE loyalty_members SET held = held + 3, balance = balance - 3 WHERE id = 'm'`, "pending holds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				e := newEnv(t, d)
				e.member(t, "m")
				e.earn(t, "m", flight("f1", 1000, "Y"))
				e.verify(t)
				if err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
					_, err := tx.ExecContext(ctx, c.sql)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				problems, err := e.svc.Verify(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(strings.Join(problems, "\n"), c.want) {
					t.Errorf("problems %q, want one about %q", problems, c.want)
				}
			})
		})
	}
}
