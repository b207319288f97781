package cart_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

// TestClients runs the cart against the catalog over HTTP (catalog.Client as
// its Prices) and drives it through cart.Client, as split mode does.
func TestClients(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		usd := func(n int64) money.Money { return money.Money{Amount: n, Currency: "USD"} }
		cat := catalog.New(catalog.Config{DB: d})
		p, err := cat.Create(ctx, catalog.NewProduct{SKU: "SKU-1", Name: "Thing", Price: usd(1000)})
		if err != nil {
			t.Fatal(err)
		}
		catSrv := peertest.Serve(t, d, append(cat.Routes(), cat.InternalRoutes()...)...)
		catClient := catalog.NewClient(catSrv.URL, peertest.HTTPClient(5*time.Second), catSrv.Tokens)

		t.Run("catalog", func(t *testing.T) {
			catSrv.Fail503Next(1) // a read: retried
			ps, err := catClient.Products(ctx, []string{p.ID, "prod_none"})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := cat.Products(ctx, []string{p.ID})
			if diff := cmp.Diff(want, ps); diff != "" {
				t.Fatalf("Products (-in process +client):\n%s", diff)
			}
			prices, err := catClient.Prices(ctx, []string{p.ID})
			if err != nil || prices[p.ID] != usd(1000) {
				t.Fatalf("Prices = %v, %v", prices, err)
			}
			peertest.CheckUnreachable(t, catSrv, func(base string, hc *http.Client) error {
				_, err := catalog.NewClient(base, hc, catSrv.Tokens).Products(ctx, []string{p.ID})
				return err
			})
		})

		spans := tracetest.NewSpanRecorder()
		svc := cart.New(cart.Config{DB: d, Catalog: catClient, TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))})
		srv := peertest.Serve(t, d, append(svc.Routes(), svc.InternalRoutes()...)...)
		c := cart.NewClient(srv.URL, peertest.HTTPClient(5*time.Second), srv.Tokens)
		cartOf := func(member string) string {
			cr, err := svc.Create(ctx, member)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.AddItem(ctx, cr.ID, p.ID, 2); err != nil {
				t.Fatal(err)
			}
			return cr.ID
		}

		id := cartOf("m1")
		srv.DropNext(1)
		v, err := c.Validate(ctx, id, "m1", "co_1", "res_1")
		want := cart.Validated{CartID: id, MemberID: "m1", Items: []cart.Item{{ProductID: p.ID, Quantity: 2, UnitPrice: usd(1000)}}, Total: usd(2000)}
		if err != nil {
			t.Fatal(err)
		}
		// The reservation id crosses the wire to label cart.validate.
		if got := spanAttr(spans.Ended(), "cart.validate", "inventory.reservation_id"); got != "res_1" {
			t.Errorf("cart.validate inventory.reservation_id = %q, want res_1", got)
		}
		if diff := cmp.Diff(want, v); diff != "" {
			t.Fatalf("Validate (-want +got):\n%s", diff)
		}
		_, err = c.Validate(ctx, id, "m1", "co_other", "")
		peertest.WantError(t, err, errs.Conflict, "cart_checked_out", http.StatusConflict)
		if err := c.Release(ctx, id, "co_1"); err != nil {
			t.Fatal(err)
		}
		if cr, _ := svc.Get(ctx, id); cr.CheckoutID != "" {
			t.Fatalf("cart still held by %s after Release", cr.CheckoutID)
		}
		_, err = c.Validate(ctx, id, "m2", "co_2", "")
		peertest.WantError(t, err, errs.Forbidden, "cart_forbidden", http.StatusForbidden)

		// A changed price: 409 with the old and new prices.
		if _, err := cat.Update(ctx, p.ID, catalog.NewProduct{SKU: "SKU-1", Name: "Thing", Price: usd(1200)}); err != nil {
			t.Fatal(err)
		}
		_, err = c.Validate(ctx, id, "m1", "co_3", "")
		e := peertest.WantError(t, err, errs.Conflict, "price_changed", http.StatusConflict)
		b, _ := json.Marshal(e.Details["prices"])
		wantPrices := `[{"new_price":{"amount":1200,"currency":"USD"},"old_price":{"amount":1000,"currency":"USD"},"product_id":"` + p.ID + `"}]`
		if diff := cmp.Diff(wantPrices, string(b)); diff != "" {
			t.Fatalf("prices detail (-want +got):\n%s", diff)
		}

		peertest.CheckUnreachable(t, srv, func(base string, hc *http.Client) error {
			return cart.NewClient(base, hc, srv.Tokens).Release(ctx, id, "co_1")
		})
	})
}

// spanAttr returns attribute key of the last ended span called name.
func spanAttr(spans []sdktrace.ReadOnlySpan, name, key string) string {
	v := ""
	for _, s := range spans {
		if s.Name() != name {
			continue
		}
		for _, kv := range s.Attributes() {
			if string(kv.Key) == key {
				v = kv.Value.AsString()
			}
		}
	}
	return v
}
