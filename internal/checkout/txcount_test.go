package checkout_test

import (
	"context"
	"regexp"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/errs"
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
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			dbtest.EachWith(t, dbtest.Options{TracerProvider: tp, SQLiteStatementSpans: true}, func(t *testing.T, d *db.DB) {
				o := m.opts
				o.tp = tp
				f := newFixture(t, d, o)
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
						commits, own := countWrites(rec)
						t.Logf("%s: %d commits, %d of them the checkout's own", d.Engine(), commits, own)
						// begin (the row and its lease, before any effect), the intent
						// before the first effect recovery needs the row's contents for,
						// and the outcome.
						if own != 3 {
							t.Errorf("%d checkouts writes, want 3", own)
						}
						// Each service committing on its own: plus cart validate,
						// reserve, charge, commit stock, create and confirm the order
						// (the points hold is an in-memory fake here). In one process:
						// everything before the charge, the charge, everything after it.
						limit := 3 + 6
						if o.local {
							limit = 3
						}
						if commits > limit {
							t.Errorf("%d commits for one checkout, want at most %d", commits, limit)
						}
					})
				}
				if !o.local {
					return
				}
				// A rule that fails a joined write (no stock) rolls the first
				// transaction back; only the failure's record commits.
				t.Run("no stock", func(t *testing.T) {
					c := f.cart(t, member, map[string]int64{a.ID: 1000})
					rec.Reset()
					_, err := f.checkout.Checkout(context.Background(), checkout.Request{CheckoutID: checkout.ID(member, "tx-nostock"), CartID: c,
						MemberID: member, Email: "m@example.com", PaymentToken: "tok_visa"})
					if errs.CodeOf(err) != "insufficient_stock" {
						t.Fatalf("checkout: %v, want insufficient_stock", err)
					}
					if commits, _ := countWrites(rec); commits != 1 {
						t.Errorf("%d commits for a checkout without stock, want 1", commits)
					}
					st, err := f.checkout.Get(context.Background(), checkout.ID(member, "tx-nostock"))
					if err != nil || st.State != "failed" || st.FailureStep != checkout.StepReservingInventory || st.FailureCode != "insufficient_stock" {
						t.Errorf("recorded %+v, %v", st, err)
					}
					f.assertConsistent(t)
				})
			})
		})
	}
}

// countWrites counts the commits and the checkouts-table writes among rec's spans.
func countWrites(rec *tracetest.SpanRecorder) (commits, own int) {
	for _, s := range rec.Ended() {
		if s.Name() == "sql.tx.commit" {
			commits++
		}
		if checkoutWrite.MatchString(attrs(s)["db.query.text"].AsString()) {
			own++
		}
	}
	return commits, own
}
