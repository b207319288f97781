package checkout_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/bounds"
	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestHugeStockKeepsCatalogUp is the reported reproduction: stock set near
// the integer limit, then a reservation released on top of it. The set is
// refused with a 400 naming the bound, and the catalogue keeps answering.
func TestHugeStockKeepsCatalogUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFixture(t, d, fixtureOpts{})
		p := f.product(t, "BIG-1", 1000, 10)
		res, err := f.inv.Reserve(ctx, "co_big", []inventory.Item{{ProductID: p.ID, Quantity: 3}})
		if err != nil {
			t.Fatal(err)
		}
		admin := f.token(t, auth.ScopeAdmin, "admin")
		r := f.do(t, "PUT", "/v1/admin/inventory/"+p.ID, admin, "", fmt.Sprintf(`{"available":%d}`, int64(math.MaxInt64)))
		if r.status != 400 || r.str("code") != "invalid_field" || r.str("field") != "available" {
			t.Errorf("PUT available=MaxInt64: %d %s, want 400 invalid_field on available", r.status, r.raw)
		}
		if _, err := f.inv.Release(ctx, res.ID); err != nil {
			t.Fatalf("release: %v", err)
		}
		if r := f.do(t, "GET", "/v1/products", "", "", ""); r.status != 200 {
			t.Fatalf("GET /v1/products after the release: %d %s", r.status, r.raw)
		}
		if got := f.available(t, p.ID); got != 10 {
			t.Errorf("available %d, want 10", got)
		}
		f.assertConsistent(t)
	})
}

// TestQuantityBoundsAtTheEdge: every edge that takes a quantity refuses one
// past its documented bound with a 400 invalid_field (invalid_items for a
// reservation) and changes nothing; the bound itself is accepted.
func TestQuantityBoundsAtTheEdge(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFixture(t, d, fixtureOpts{})
		p := f.product(t, "EDGE-1", 1000, 10)
		admin := f.token(t, auth.ScopeAdmin, "admin")
		for _, c := range []struct{ method, path, body, field string }{
			{"PUT", "/v1/admin/inventory/" + p.ID, fmt.Sprintf(`{"available":%d}`, bounds.MaxStock+1), "available"},
			{"PUT", "/v1/admin/inventory/" + p.ID, `{"available":-1}`, "available"},
			{"POST", "/v1/admin/products", fmt.Sprintf(`{"sku":"EDGE-2","name":"x","price":{"amount":100,"currency":"USD"},"available":%d}`, bounds.MaxStock+1), "available"},
			{"POST", "/v1/admin/products", fmt.Sprintf(`{"sku":"EDGE-3","name":"x","price":{"amount":%d,"currency":"USD"}}`, bounds.MaxPriceAmount+1), "price"},
		} {
			r := f.do(t, c.method, c.path, admin, "", c.body)
			if r.status != 400 || r.str("code") != "invalid_field" || r.str("field") != c.field {
				t.Errorf("%s %s %s: %d %s, want 400 invalid_field on %s", c.method, c.path, c.body, r.status, r.raw, c.field)
			}
		}
		if got := f.available(t, p.ID); got != 10 {
			t.Errorf("available %d after refused sets, want 10", got)
		}
		if n := f.count(t, `SELECT COUNT(*) FROM products`); n != 1 {
			t.Errorf("%d products after refused creates, want 1", n)
		}
		if r := f.do(t, "PUT", "/v1/admin/inventory/"+p.ID, admin, "", fmt.Sprintf(`{"available":%d}`, bounds.MaxStock)); r.status != 200 {
			t.Errorf("PUT available=MaxStock: %d %s", r.status, r.raw)
		}
		half := bounds.MaxStock/2 + 1
		_, err := f.inv.Reserve(ctx, "co_edge", []inventory.Item{{ProductID: p.ID, Quantity: half}, {ProductID: p.ID, Quantity: half}})
		if errs.CodeOf(err) != "invalid_items" {
			t.Errorf("reserving 2 × %d units: %v, want invalid_items", half, err)
		}
		// A release onto stock set back to the bound meanwhile saturates.
		res, err := f.inv.Reserve(ctx, "co_edge2", []inventory.Item{{ProductID: p.ID, Quantity: 5}})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.inv.SetAvailable(ctx, p.ID, bounds.MaxStock); err != nil {
			t.Fatal(err)
		}
		if _, err := f.inv.Release(ctx, res.ID); err != nil {
			t.Fatalf("release onto stock at the bound: %v", err)
		}
		if got := f.available(t, p.ID); got != bounds.MaxStock {
			t.Errorf("available %d after the release, want the bound %d", got, bounds.MaxStock)
		}
		f.assertConsistent(t)
	})
}

// TestSchemaRefusesOutOfBoundQuantities: the schema (migration 00044) refuses
// what the edge refuses, for writes that do not go through the services.
func TestSchemaRefusesOutOfBoundQuantities(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d, fixtureOpts{})
		p := f.product(t, "SCH-1", 1000, 10)
		cartID := f.cart(t, "", map[string]int64{p.ID: 1})
		for _, q := range []string{
			fmt.Sprintf(`UPDATE inventory SET available = %d WHERE product_id = '%s'`, bounds.MaxStock+1, p.ID),
			fmt.Sprintf(`UPDATE inventory SET available = 9223372036854775807 + 1 WHERE product_id = '%s'`, p.ID),
			fmt.Sprintf(`UPDATE inventory SET available = -1 WHERE product_id = '%s'`, p.ID),
			fmt.Sprintf(`UPDATE products SET price_amount = %d WHERE id = '%s'`, bounds.MaxPriceAmount+1, p.ID),
			fmt.Sprintf(`UPDATE cart_items SET quantity = %d WHERE cart_id = '%s'`, cart.MaxQuantity+1, cartID),
			fmt.Sprintf(`INSERT INTO reservation_items (reservation_id, product_id, quantity) VALUES ('res_x', '%s', %d)`, p.ID, bounds.MaxStock+1),
			fmt.Sprintf(`INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price_amount) VALUES ('ord_x', '%s', 's', 'n', %d, 1)`, p.ID, bounds.MaxStock+1),
		} {
			if err := exec(d, q); err == nil {
				t.Errorf("%s: accepted, want a constraint failure", q)
			}
		}
		if err := exec(d, fmt.Sprintf(`UPDATE inventory SET available = %d WHERE product_id = '%s'`, bounds.MaxStock, p.ID)); err != nil {
			t.Errorf("stock at the bound: %v", err)
		}
	})
}

// TestVerifyNamesImpossibleQuantities forces values past their bounds by SQL
// (the schema's bounds dropped first, as on a database damaged before them):
// verify names each, the catalogue still answers, and the unit sums do not
// overflow.
func TestVerifyNamesImpossibleQuantities(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFixture(t, d, fixtureOpts{})
		p := f.product(t, "IMP-1", 1000, 10)
		cartID := f.cart(t, "", map[string]int64{p.ID: 2})
		if r := f.do(t, "POST", "/v1/checkout", "", "imp-1", checkoutBody(cartID, "tok_visa", "imp@example.test", 0)); r.status != 201 {
			t.Fatalf("checkout: %d %s", r.status, r.raw)
		}
		f.assertConsistent(t)
		dropBounds(t, d)
		huge := "9223372036854775807"
		if d.Engine() == db.SQLite {
			huge = "9223372036854775807 + 5" // what an overflowing sum leaves: a REAL
		}
		for _, q := range []string{
			`UPDATE inventory SET available = ` + huge + ` WHERE product_id = '` + p.ID + `'`,
			`UPDATE reservation_items SET quantity = 9223372036854775807`,
			`UPDATE order_items SET quantity = -3`,
			`UPDATE products SET price_amount = 1000000000001`,
		} {
			if err := exec(d, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if r := f.do(t, "GET", "/v1/products", "", "", ""); r.status != 200 {
			t.Errorf("GET /v1/products with a damaged stock row: %d %s", r.status, r.raw)
		}
		problems, err := f.checkout.Verify(ctx, 0)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		all := strings.Join(problems, "\n")
		for _, want := range []string{"inventory " + p.ID + ": available", "reservation_items res_", "order_items ord_", "products " + p.ID + ": price_amount"} {
			if !strings.Contains(all, want) {
				t.Errorf("verify said %q, want a line with %q", problems, want)
			}
		}
	})
}

func exec(d *db.DB, q string) error {
	return d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, q)
		return err
	})
}

// dropBounds removes migration 00044's bounds, as on a database whose rows
// were damaged before it.
func dropBounds(t *testing.T, d *db.DB) {
	t.Helper()
	for _, b := range []struct{ table, name string }{
		{"inventory", "inventory_available_bounds"}, {"reservation_items", "reservation_items_quantity_bounds"},
		{"order_items", "order_items_quantity_bounds"}, {"cart_items", "cart_items_quantity_bounds"}, {"products", "products_price_bounds"},
	} {
		qs := []string{`ALTER TABLE ` + b.table + ` DROP CONSTRAINT ` + b.name}
		if d.Engine() == db.SQLite {
			qs = []string{`DROP TRIGGER ` + b.name + `_insert`, `DROP TRIGGER ` + b.name + `_update`}
		}
		for _, q := range qs {
			if err := exec(d, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}
