package payment_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

func TestClient(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		sim := payment.NewSimulator(payment.SimulatorConfig{DB: d})
		spans := tracetest.NewSpanRecorder()
		svc := payment.New(payment.Config{Provider: sim, TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))})
		srv := peertest.Serve(t, d, svc.InternalRoutes()...)
		c := payment.NewClient(srv.URL, peertest.HTTPClient(5*time.Second), srv.Tokens)
		usd := func(n int64) money.Money { return money.Money{Amount: n, Currency: "USD"} }

		// A charge retried after a dropped connection charges once.
		srv.DropNext(1)
		ch, err := c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_1", Amount: usd(1500), Token: payment.TokenVisa, OrderID: "ord_1"})
		if err != nil || ch.Status != payment.StatusSucceeded || ch.IdempotencyKey != "co_1" {
			t.Fatalf("Charge = %+v, %v", ch, err)
		}
		// The order id crosses the wire to label payment.process.
		if ps := spans.Ended(); len(ps) == 0 || !hasAttribute(ps[len(ps)-1], "order.id", "ord_1") {
			t.Error("payment.process lacks order.id ord_1")
		}
		again, err := c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_1", Amount: usd(1500), Token: payment.TokenVisa, OrderID: "ord_1"})
		if err != nil || again.ID != ch.ID {
			t.Fatalf("repeated Charge = %+v, %v; want charge %s", again, err, ch.ID)
		}
		found, err := c.Lookup(ctx, "co_1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ch.ID, found.ID); diff != "" || !found.CreatedAt.Equal(ch.CreatedAt) {
			t.Fatalf("Lookup = %+v, want %+v", found, ch)
		}
		rf, err := c.Refund(ctx, ch.ID, usd(500), "rf_1")
		if err != nil || rf.ChargeID != ch.ID || rf.Amount != usd(500) {
			t.Fatalf("Refund = %+v, %v", rf, err)
		}

		ch2, err := c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_2", Amount: usd(700), Token: payment.TokenMastercard})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := c.Void(ctx, ch2.ID); err != nil || v.Status != payment.StatusVoided {
			t.Fatalf("Void = %+v, %v", v, err)
		}

		// A decline is 402 with its details and the *DeclineError, as in process.
		_, err = c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_3", Amount: usd(700), Token: payment.TokenDeclinedProcessingError})
		e := peertest.WantError(t, err, errs.PaymentRequired, "payment_declined", http.StatusPaymentRequired)
		if d, ok := payment.AsDecline(err); !ok || d.Code != "processing_error" || !d.Soft || e.Details["decline_code"] != "processing_error" {
			t.Fatalf("decline = %+v %v, details %v", d, ok, e.Details)
		}
		_, err = c.Lookup(ctx, "co_none")
		peertest.WantError(t, err, errs.NotFound, "charge_not_found", http.StatusNotFound)
		_, err = c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_4", Amount: usd(700), Token: "not a token"})
		peertest.WantError(t, err, errs.Unprocessable, "invalid_payment_token", http.StatusUnprocessableEntity)
		// A card number never reaches the service: the HTTP edge refuses it.
		_, err = c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_5", Amount: usd(700), Token: "4242424242424242"})
		peertest.WantError(t, err, errs.Unprocessable, "card_data_rejected", http.StatusUnprocessableEntity)

		peertest.CheckUnreachable(t, srv, func(base string, hc *http.Client) error {
			_, err := payment.NewClient(base, hc, srv.Tokens).Lookup(ctx, "co_1")
			return err
		})
	})
}

// hasAttribute reports whether s is a payment.process span carrying key=value.
func hasAttribute(s sdktrace.ReadOnlySpan, key, value string) bool {
	return s.Name() == "payment.process" && slices.Contains(s.Attributes(), attribute.String(key, value))
}
