package inventory_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

func TestClient(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		svc := inventory.New(inventory.Config{DB: d})
		stock := int64(5)
		p, err := catalog.New(catalog.Config{DB: d}).Create(ctx, catalog.NewProduct{SKU: "SKU-1", Name: "Thing", Price: money.Money{Amount: 100, Currency: "USD"}, Available: &stock})
		if err != nil {
			t.Fatal(err)
		}
		srv := peertest.Serve(t, d, append(svc.Routes(), svc.InternalRoutes()...)...)
		c := inventory.NewClient(srv.URL, peertest.HTTPClient(5e9), srv.Tokens)

		// Reserve, retried after a dropped connection, takes the stock once.
		srv.DropNext(1)
		res, err := c.Reserve(ctx, "co_1", []inventory.Item{{ProductID: p.ID, Quantity: 2}})
		if err != nil || res.State != inventory.StateHeld || res.Reference != "co_1" {
			t.Fatalf("Reserve = %+v, %v", res, err)
		}
		if n, _ := svc.Available(ctx, p.ID); n != 3 {
			t.Fatalf("available after reserve = %d, want 3", n)
		}
		got, err := c.ReservationByReference(ctx, "co_1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(res, got); diff != "" {
			t.Fatalf("ReservationByReference (-reserve +lookup):\n%s", diff)
		}
		if err := c.Commit(ctx, res.ID); err != nil {
			t.Fatal(err)
		}
		if released, err := c.Release(ctx, res.ID); err != nil || released {
			t.Fatalf("Release of a committed reservation = %v, %v", released, err)
		}

		// 409 with the short products, exactly as in process.
		_, err = c.Reserve(ctx, "co_2", []inventory.Item{{ProductID: p.ID, Quantity: 9}})
		e := peertest.WantError(t, err, errs.Conflict, "insufficient_stock", http.StatusConflict)
		b, _ := json.Marshal(e.Details["products"])
		if diff := cmp.Diff(`[{"available":3,"product_id":"`+p.ID+`","requested":9}]`, string(b)); diff != "" {
			t.Fatalf("products detail (-want +got):\n%s", diff)
		}
		_, err = c.ReservationByReference(ctx, "co_none")
		peertest.WantError(t, err, errs.NotFound, "reservation_not_found", http.StatusNotFound)

		r3, err := c.Reserve(ctx, "co_3", []inventory.Item{{ProductID: p.ID, Quantity: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if released, err := c.Release(ctx, r3.ID); err != nil || !released {
			t.Fatalf("Release = %v, %v", released, err)
		}
		err = c.Commit(ctx, r3.ID)
		peertest.WantError(t, err, errs.Conflict, "reservation_expired", http.StatusConflict)

		peertest.CheckUnreachable(t, srv, func(base string, hc *http.Client) error {
			_, err := inventory.NewClient(base, hc, srv.Tokens).ReservationByReference(ctx, "co_1")
			return err
		})
	})
}
