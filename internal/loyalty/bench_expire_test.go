package loyalty_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
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
//
// Beside members/s it reports cpu-µs/member, the CPU time this process spent
// (all its threads: on SQLite that includes the database's own work, on
// PostgreSQL not the server's) per member, from /proc on Linux. On a shared
// machine wall-clock throughput swings with the neighbours' load; CPU time per
// member much less.
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
			start, cpuStart := time.Now(), processCPU()
			rep, err := svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: startTime.AddDate(3, 0, 0)})
			elapsed, cpuEnd := time.Since(start), processCPU()
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if rep.AccountsAffected != b.N {
				b.Fatalf("expired %d accounts, want %d", rep.AccountsAffected, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "members/s")
			if cpuStart >= 0 && cpuEnd >= 0 {
				b.ReportMetric(float64((cpuEnd-cpuStart).Microseconds())/float64(b.N), "cpu-µs/member")
			}
		})
	}
}

// processCPU returns the user and system CPU time this process has used, or
// -1 where /proc/self/stat cannot be read.
func processCPU() time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	// The fields after the command name (which may hold spaces) end with
	// ')'; utime and stime are the 14th and 15th fields, in clock ticks
	// (100 a second on Linux).
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return -1
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return -1
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
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
