package checkout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestVerifyFindsEachKindOfDamage checks that Verify is clean after real
// checkouts and names each invariant a corrupted database breaks.
func TestVerifyFindsEachKindOfDamage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFixture(t, d, fixtureOpts{})
		p := f.product(t, "VER-1", 1500, 10)
		for i, key := range []string{"v-1", "v-2"} {
			cartID := f.cart(t, "", map[string]int64{p.ID: int64(i + 1)})
			if r := f.do(t, "POST", "/v1/checkout", "", key, checkoutBody(cartID, "tok_visa", "buyer@example.test", 0)); r.status != 201 {
				t.Fatalf("checkout %s: %d %v", key, r.status, r.body)
			}
		}
		f.assertConsistent(t)

		damage := []struct {
			sql  string
			want string
		}{
			{`INSERT INTO payment_charges (id, idempotency_key, amount, currency, status, created_at, updated_at) VALUES ('ch_orphan', 'k-orphan', 100, 'USD', 'succeeded', 0, 0)`, "charge ch_orphan"},
			{`INSERT INTO reservations (id, reference, state, expires_at, created_at, updated_at) VALUES ('res_stuck', 'co_stuck', 'held', 1, 0, 0)`, "reservation res_stuck"},
			{`UPDATE order_items SET quantity = quantity + 5 WHERE order_id = (SELECT MIN(id) FROM orders)`, "units committed from stock"},
			{`DELETE FROM outbox WHERE reference = (SELECT MIN(id) FROM orders)`, "without a queued confirmation"},
		}
		for _, dmg := range damage {
			err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := tx.ExecContext(ctx, dmg.sql)
				return err
			})
			if err != nil {
				t.Fatalf("damage %q: %v", dmg.sql, err)
			}
			problems, err := f.checkout.Verify(ctx, time.Duration(0))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(problems, "\n"), dmg.want) {
				t.Fatalf("after %q verify said %q, want a line with %q", dmg.sql, problems, dmg.want)
			}
		}
	})
}
