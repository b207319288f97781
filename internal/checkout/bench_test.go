package checkout_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// BenchmarkCheckout runs whole checkouts (3 items, one of 64 members earning
// points with the real loyalty service, simulator without latency) through the saga,
// without HTTP. Carts are prepared before the timer starts. "per-service" has
// each service commit on its own, as in split mode; "local" shares the saga's
// transactions (Config.LocalTx), as in one process. "serial" is one client;
// "parallel" is GOMAXPROCS×4 clients.
func BenchmarkCheckout(b *testing.B) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		for _, tx := range []string{"per-service", "local"} {
			for _, mode := range []string{"serial", "parallel"} {
				b.Run(string(e)+"/"+tx+"/"+mode, func(b *testing.B) {
					benchCheckout(b, e, fixtureOpts{local: tx == "local", realLoyalty: true}, mode == "parallel")
				})
			}
		}
	}
}

func benchCheckout(b *testing.B, e db.Engine, o fixtureOpts, parallel bool) {
	d := dbtest.New(b, e)
	f := newFixture(b, d, o)
	ps := []string{
		f.product(b, "B-1", 1000, 1_000_000_000).ID,
		f.product(b, "B-2", 2500, 1_000_000_000).ID,
		f.product(b, "B-3", 399, 1_000_000_000).ID,
	}
	// 64 members, so that clients do not queue on one member's points.
	member := func(i int) string { return fmt.Sprintf("mem_bench_%d", i%64) }
	carts := make([]string, b.N)
	for i := range carts {
		carts[i] = f.cart(b, member(i), map[string]int64{ps[0]: 1, ps[1]: 2, ps[2]: 3})
	}
	ctx := context.Background()
	run := func(i int) {
		_, err := f.checkout.Checkout(ctx, checkout.Request{CheckoutID: checkout.ID("bench", fmt.Sprint(i)), CartID: carts[i],
			MemberID: member(i), Email: "bench@example.com", PaymentToken: "tok_visa"})
		if err != nil {
			b.Error(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := range b.N {
			run(i)
		}
		return
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			run(int(next.Add(1) - 1))
		}
	})
}
