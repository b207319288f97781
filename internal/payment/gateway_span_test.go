package payment_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestDeclineSpanStatus checks that a declined charge's gateway span says
// payment_declined with its decline code, not a generic internal error.
func TestDeclineSpanStatus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	d := dbtest.New(t, db.SQLite)
	svc := payment.New(payment.Config{Provider: payment.NewSimulator(payment.SimulatorConfig{DB: d}), TracerProvider: tp})
	_, err := svc.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: "k1", Amount: money.Money{Amount: 500, Currency: "USD"}, Token: "tok_chargeDeclinedInsufficientFunds"})
	if _, ok := payment.AsDecline(err); !ok {
		t.Fatalf("charge error = %v, want a decline", err)
	}
	found := false
	for _, s := range rec.Ended() {
		if s.Name() != "payment.gateway_call" {
			continue
		}
		found = true
		if s.Status().Description != "payment_declined" {
			t.Errorf("gateway span status = %q, want payment_declined", s.Status().Description)
		}
		for _, a := range s.Attributes() {
			if a.Key == "payment.decline_code" && a.Value.AsString() != "insufficient_funds" {
				t.Errorf("decline code = %q", a.Value.AsString())
			}
		}
	}
	if !found {
		t.Fatal("no payment.gateway_call span")
	}
}
