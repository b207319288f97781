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

// BenchmarkCheckout runs whole checkouts (3 items, a member earning points,
// simulator without latency) through the saga, without HTTP. Carts are
// prepared before the timer starts. "serial" is one client; "parallel" is
// GOMAXPROCS×4 clients.
func BenchmarkCheckout(b *testing.B) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(string(e)+"/"+mode, func(b *testing.B) {
				d := dbtest.New(b, e)
				f := newFixture(b, d, fixtureOpts{})
				ps := []string{
					f.product(b, "B-1", 1000, 1_000_000_000).ID,
					f.product(b, "B-2", 2500, 1_000_000_000).ID,
					f.product(b, "B-3", 399, 1_000_000_000).ID,
				}
				carts := make([]string, b.N)
				for i := range carts {
					carts[i] = f.cart(b, "mem_bench", map[string]int64{ps[0]: 1, ps[1]: 2, ps[2]: 3})
				}
				ctx := context.Background()
				run := func(i int) {
					_, err := f.checkout.Checkout(ctx, checkout.Request{CheckoutID: checkout.ID("bench", fmt.Sprint(i)), CartID: carts[i],
						MemberID: "mem_bench", Email: "bench@example.com", PaymentToken: "tok_visa"})
					if err != nil {
						b.Error(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
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
			})
		}
	}
}
