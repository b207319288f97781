package inventory_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestReserveDelayFault(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		cat := catalog.New(catalog.Config{DB: d})
		stock := int64(5)
		p, err := cat.Create(ctx, catalog.NewProduct{SKU: "F-1", Name: "Fault", Price: money.Money{Amount: 100, Currency: "USD"}, Available: &stock})
		if err != nil {
			t.Fatal(err)
		}
		inv := inventory.New(inventory.Config{DB: d, TracerProvider: tp})

		if _, err := inv.SetFaults(ctx, inventory.Faults{ReserveDelayMS: -1}); errs.KindOf(err) != errs.Invalid {
			t.Fatalf("negative delay: %v", err)
		}
		if _, err := inv.SetFaults(ctx, inventory.Faults{ReserveDelayMS: 120}); err != nil {
			t.Fatal(err)
		}
		if _, err := inv.Reserve(ctx, "ref-slow", []inventory.Item{{ProductID: p.ID, Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
		if _, err := inv.SetFaults(ctx, inventory.Faults{}); err != nil {
			t.Fatal(err)
		}
		if _, err := inv.Reserve(ctx, "ref-fast", []inventory.Item{{ProductID: p.ID, Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
		var delayed, plain int
		for _, s := range rec.Ended() {
			if s.Name() != "inventory.reserve_batch" {
				continue
			}
			injected := false
			for _, e := range s.Events() {
				injected = injected || e.Name == "fault_injected"
			}
			if injected {
				delayed++
				if got := s.EndTime().Sub(s.StartTime()); got < 120*time.Millisecond {
					t.Errorf("delayed reservation span lasted %s, less than the injected 120ms", got)
				}
			} else {
				plain++
			}
		}
		if delayed != 1 || plain != 1 {
			t.Fatalf("delayed=%d plain=%d reservations, want 1 and 1 (fault not applied or not cleared)", delayed, plain)
		}
	})
}
