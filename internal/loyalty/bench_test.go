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

// BenchmarkEarn measures Earn with tracing on (a real SDK provider with a
// batch processor to a discarding exporter, database spans included), from
// 8 concurrent clients over 1,000 members, with one running promotion.
func BenchmarkEarn(b *testing.B) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			d := dbtest.NewWith(b, engine, dbtest.Options{TracerProvider: tp})
			now := time.Now().UTC()
			svc, err := loyalty.New(loyalty.Config{DB: d, Program: program.Default(), TracerProvider: tp})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			const members = 1000
			for i := range members {
				if _, err := svc.CreateMember(ctx, loyalty.NewMember{ID: fmt.Sprintf("m%d", i), Name: "Bench", Email: "bench@example.com"}); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := svc.CreatePromotion(ctx, program.Promotion{Name: "Double flights", ActivityTypes: []string{"flight"},
				MultiplierBP: 20000, CapPoints: 1_000_000, Start: now.Add(-time.Hour), End: now.Add(24 * time.Hour)}); err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			b.SetParallelism(4) // 8 clients on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					a := flight(fmt.Sprintf("bench-%d", n), 500+n%3000, "Y")
					if _, err := svc.Earn(ctx, fmt.Sprintf("m%d", n%members), a); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "earns/s")
		})
	}
}
