package loyalty_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// BenchmarkRedeem measures a full redemption (hold, built-in fulfilment,
// capture: two write transactions) with tracing on, from 8 concurrent
// clients: "hot" sends every redemption for one member (they serialise on
// its row lock), "spread" spreads them over 1,000 members.
func BenchmarkRedeem(b *testing.B) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		for _, shape := range []struct {
			name    string
			members int
		}{{"hot", 1}, {"spread", 1000}} {
			b.Run(string(engine)+"/"+shape.name, func(b *testing.B) {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				d := dbtest.NewWith(b, engine, dbtest.Options{TracerProvider: tp})
				svc, err := loyalty.New(loyalty.Config{DB: d, Program: program.Default(), TracerProvider: tp})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				for i := range shape.members {
					id := fmt.Sprintf("m%d", i)
					if _, err := svc.CreateMember(ctx, loyalty.NewMember{ID: id, Name: "Bench", Email: "bench@example.com"}); err != nil {
						b.Fatal(err)
					}
					if _, err := svc.Adjust(ctx, id, 1_000_000_000, "benchmark funding"); err != nil {
						b.Fatal(err)
					}
				}
				var seq atomic.Int64
				b.SetParallelism(4) // 8 clients on 2 cores
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := seq.Add(1)
						if _, err := svc.Redeem(ctx, fmt.Sprintf("m%d", n%int64(shape.members)), "merch-luggage-tag", ""); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "redemptions/s")
			})
		}
	}
}
