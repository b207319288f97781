package loyalty_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// BenchmarkExpire measures ExpireBatch with tracing on (a span per member, as
// the seed asks, and database spans) over b.N members who each hold two lots
// whose points have expired. One op is one member expired; run it with a fixed
// count, e.g. -benchtime 5000x, since seeding happens outside the timer.
func BenchmarkExpire(b *testing.B) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			d := dbtest.NewWith(b, engine, dbtest.Options{TracerProvider: tp})
			clk := &clock{t: startTime}
			svc, err := loyalty.New(loyalty.Config{DB: d, Program: program.Default(), TracerProvider: tp, Now: clk.Now})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			seedExpiring(b, svc, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			rep, err := svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: startTime.AddDate(3, 0, 0)})
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if rep.AccountsAffected != b.N {
				b.Fatalf("expired %d accounts, want %d", rep.AccountsAffected, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "members/s")
		})
	}
}

// seedExpiring creates n members with two earned lots each, from 8 goroutines.
func seedExpiring(b *testing.B, svc *loyalty.Service, n int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				id := fmt.Sprintf("x%06d", i)
				if _, err := svc.CreateMember(ctx, loyalty.NewMember{ID: id, Name: "Bench", Email: "bench@example.com"}); err != nil {
					errc <- err
					return
				}
				for j := range 2 {
					if _, err := svc.Earn(ctx, id, flight(fmt.Sprintf("%s-%d", id, j), 1000, "Y")); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
