package loyalty_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// ledgerState is what an expiry run could change, summed.
func ledgerState(t *testing.T, e *env) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, q := range map[string]string{
		"transactions": `SELECT COUNT(*) FROM loyalty_transactions`,
		"postings":     `SELECT COUNT(*) FROM loyalty_postings`,
		"lots left":    `SELECT COALESCE(SUM(remaining), 0) FROM loyalty_lots`,
		"balances":     `SELECT COALESCE(SUM(balance), 0) FROM loyalty_members`,
		"updated":      `SELECT COALESCE(SUM(updated_at), 0) FROM loyalty_members`,
		"expired":      `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings WHERE account = 'sink:expiry'`,
	} {
		out[name] = e.count(t, q)
	}
	return out
}

// A dry run reports what a run would expire, by the same rules, and writes
// nothing; the run that follows expires exactly that.
func TestExpireDryRun(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		prog *program.Program
	}{{"lot", lotProgram(1)}, {"inactivity", program.Default()}} {
		t.Run(c.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				e := newEnvWith(t, d, c.prog)
				for _, id := range []string{"a", "b", "c"} {
					e.member(t, id)
				}
				e.earn(t, "a", hotel("h1", 50_000))
				e.earn(t, "b", hotel("h2", 20_000))
				if _, err := e.svc.HoldPoints(ctx, "b", 500, "checkout-dry"); err != nil { // held points never expire
					t.Fatal(err)
				}
				e.clock.Set(program.AddMonths(startTime, 3))
				e.earn(t, "c", hotel("h3", 10_000))

				at := program.AddMonths(startTime, 30)
				before := ledgerState(t, e)
				preview, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: at, DryRun: true, ChunkSize: 2})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(before, ledgerState(t, e)); diff != "" {
					t.Fatalf("a dry run changed the ledger (-before +after):\n%s", diff)
				}
				if !preview.DryRun || preview.AccountsAffected != 3 || preview.TotalPointsExpired != 5000+1500+1000 {
					t.Errorf("dry run = %+v, want 3 accounts and 7500 points", preview)
				}
				rep, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: at, ChunkSize: 2})
				if err != nil {
					t.Fatal(err)
				}
				if rep.DryRun || rep.AccountsAffected != preview.AccountsAffected || rep.TotalPointsExpired != preview.TotalPointsExpired || rep.Candidates != preview.Candidates {
					t.Errorf("run %+v differs from its dry run %+v", rep, preview)
				}
				if after, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: at, DryRun: true}); err != nil || after.TotalPointsExpired != 0 {
					t.Errorf("dry run after the run = %+v %v, want nothing left to expire", after, err)
				}
			})
		})
	}
}
