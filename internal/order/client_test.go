package order_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

func TestClient(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		svc := order.New(order.Config{DB: d})
		srv := peertest.Serve(t, d, append(svc.Routes(), svc.InternalRoutes()...)...)
		c := order.NewClient(srv.URL, peertest.HTTPClient(5*time.Second), srv.Tokens)
		usd := func(n int64) money.Money { return money.Money{Amount: n, Currency: "USD"} }
		no := order.NewOrder{ID: "ord_fromcheckout1", CheckoutID: "co_1", MemberID: "m1", Total: usd(3000), Charged: usd(3000), ChargeID: "ch_1",
			PointsAmount: usd(0), Items: []order.Item{{ProductID: "p1", SKU: "S1", Name: "One", Quantity: 2, UnitPrice: usd(1500)}},
			Confirmation: &notify.Message{Kind: "order_confirmation", To: "m1@example.test", Subject: "Order {order_id}", Body: "Thanks for {order_id}"}}

		srv.DropNext(1)
		o, err := c.Create(ctx, no)
		if err != nil || o.Status != order.Paid || o.ChargeID != "ch_1" || o.ID != no.ID {
			t.Fatalf("Create = %+v, %v", o, err)
		}
		var queued int
		if err := d.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE reference = $1`, o.ID).Scan(&queued); err != nil || queued != 1 {
			t.Fatalf("confirmations queued = %d, %v; want 1", queued, err)
		}
		for name, get := range map[string]func() (order.Order, error){
			"ByCheckout": func() (order.Order, error) { return c.ByCheckout(ctx, "co_1") },
			"Get":        func() (order.Order, error) { return c.Get(ctx, o.ID) },
			"Create again": func() (order.Order, error) {
				return c.Create(ctx, no)
			},
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff(o, got); diff != "" {
				t.Fatalf("%s (-created +got):\n%s", name, diff)
			}
		}
		if o, err = c.Confirm(ctx, o.ID, 42); err != nil || o.Status != order.Confirmed || o.PointsEarned != 42 {
			t.Fatalf("Confirm = %+v, %v", o, err)
		}
		part := usd(1000)
		plan, err := c.StartRefund(ctx, o.ID, "rf_1", &part)
		if err != nil || plan.Full || plan.Amount != part || plan.Order.ChargeID != "ch_1" {
			t.Fatalf("StartRefund = %+v, %v", plan, err)
		}
		if o, err = c.FinishRefund(ctx, o.ID, "rf_1"); err != nil || o.Status != order.PartiallyRefunded || o.Refunded != part {
			t.Fatalf("FinishRefund = %+v, %v", o, err)
		}

		_, err = c.Get(ctx, "ord_none")
		e := peertest.WantError(t, err, errs.NotFound, "order_not_found", http.StatusNotFound)
		if e.Details["order_id"] != "ord_none" {
			t.Fatalf("details %v", e.Details)
		}
		_, err = c.ByCheckout(ctx, "co_none")
		peertest.WantError(t, err, errs.NotFound, "order_not_found", http.StatusNotFound)
		big := usd(99999)
		_, err = c.StartRefund(ctx, o.ID, "rf_2", &big)
		e = peertest.WantError(t, err, errs.Unprocessable, "invalid_refund_amount", http.StatusUnprocessableEntity)
		if e.Details["field"] != "amount" {
			t.Fatalf("details %v", e.Details)
		}
		_, err = c.Create(ctx, order.NewOrder{CheckoutID: "co_2"})
		peertest.WantError(t, err, errs.Invalid, "invalid_order", http.StatusBadRequest)

		peertest.CheckUnreachable(t, srv, func(base string, hc *http.Client) error {
			_, err := order.NewClient(base, hc, srv.Tokens).Get(ctx, o.ID)
			return err
		})
	})
}
