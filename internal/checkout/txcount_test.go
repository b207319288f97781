package checkout_test

import (
	"context"
	"regexp"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// checkoutWrite matches the saga's own bookkeeping statements.
var checkoutWrite = regexp.MustCompile(`^\s*(INSERT INTO|UPDATE) checkouts\b`)

// TestCheckoutWriteTransactions counts, from the otelsql spans, the commits of
// one successful checkout and the checkouts-table writes among them: every
// commit is a WAL flush, so a change that adds one to the hot path is noticed.
// docs/benchmarks.md quotes it.
func TestCheckoutWriteTransactions(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, SQLiteStatementSpans: true}, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d, fixtureOpts{tp: tp})
		a, b := f.product(t, "TX-A", 1000, 100), f.product(t, "TX-B", 2500, 100)
		member := "mem_tx"
		f.loyalty.setBalance(member, 1000)
		for _, tc := range []struct {
			name   string
			points int64
		}{{"cash", 0}, {"points", 200}} {
			t.Run(tc.name, func(t *testing.T) {
				c := f.cart(t, member, map[string]int64{a.ID: 1, b.ID: 2})
				rec.Reset()
				res, err := f.checkout.Checkout(context.Background(), checkout.Request{CheckoutID: checkout.ID(member, "tx-"+tc.name), CartID: c,
					MemberID: member, Email: "m@example.com", PaymentToken: "tok_visa", PointsToRedeem: tc.points})
				if err != nil || res.Status != "confirmed" {
					t.Fatalf("checkout = %+v, %v", res, err)
				}
				commits, own := 0, 0
				for _, s := range rec.Ended() {
					if s.Name() == "sql.tx.commit" {
						commits++
					}
					if checkoutWrite.MatchString(attrs(s)["db.query.text"].AsString()) {
						own++
					}
				}
				t.Logf("%s: %d commits, %d of them the checkout's own", d.Engine(), commits, own)
				// begin (the row and its lease, before any effect), the intent
				// before the first effect recovery needs the row's contents for,
				// and the outcome.
				if own != 3 {
					t.Errorf("%d checkouts writes, want 3", own)
				}
				// Plus cart validate, reserve, charge, commit stock, create and
				// confirm the order (the points hold is an in-memory fake here).
				if limit := 3 + 6; commits > limit {
					t.Errorf("%d commits for one checkout, want at most %d", commits, limit)
				}
			})
		}
	})
}
