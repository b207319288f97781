package app_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// testClock is a settable clock for app.Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestRetentionPurgesWhatOutlivedIt runs the retention pass with the serve
// defaults and an injected clock: abandoned carts, old Idempotency-Key
// records and old failed checkouts' emails go; recent rows, a cart an
// in-progress checkout holds, a key still in progress and completed
// checkouts stay; two passes at once (as on two replicas) remove each row
// once, godwit.retention.purged counts exactly what went, and verify stays
// clean.
func TestRetentionPurgesWhatOutlivedIt(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			clk := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			cfg := app.Config{Demo: true, Now: clk.Now, Retention: app.Defaults().Retention}
			r := newRig(t, rigOptions{engine: e, cfg: cfg})
			ctx := context.Background()
			product := firstProduct(r)
			abandoned := r.cartWith("", product)
			inFlight := r.cartWith("", product)
			t0 := db.Micros(clk.Now())
			exec(t, r, `INSERT INTO checkouts (id, cart_id, email, request_hash, state, step, lease_until, created_at, updated_at)
				VALUES ('co_running', $1, 'running@example.test', 'h', 'in_progress', 'charging', $2, $3, $3)`, inFlight, t0+int64(60*24*time.Hour/time.Microsecond), t0)
			exec(t, r, `UPDATE carts SET checkout_id = 'co_running' WHERE id = $1`, inFlight)
			exec(t, r, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until) VALUES
				('o', 'running', 'h', 'pending', $1, $2), ('o', 'dead', 'h', 'pending', $1, $3)`, t0, t0+int64(60*24*time.Hour/time.Microsecond), t0+1)
			oldFailed := guestCheckout(r, product, "tok_chargeDeclined", "old.failed@example.test", 402)
			oldDone := guestCheckout(r, product, "tok_visa", "old.done@example.test", 201)

			clk.Advance(31 * 24 * time.Hour)
			recentCart := r.cartWith("", product)
			recentFailed := guestCheckout(r, product, "tok_chargeDeclined", "recent.failed@example.test", 402)
			recentKeys := count(t, r, `SELECT COUNT(*) FROM idempotency_keys WHERE created_at >= $1`, db.Micros(clk.Now()))
			cartsBefore := count(t, r, `SELECT COUNT(*) FROM carts`)
			keysBefore := count(t, r, `SELECT COUNT(*) FROM idempotency_keys`)

			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if err := r.a.RetentionPass(ctx); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()

			if n := count(t, r, `SELECT COUNT(*) FROM carts WHERE id = $1`, abandoned); n != 0 {
				t.Error("the abandoned cart is still there")
			}
			if n := count(t, r, `SELECT COUNT(*) FROM cart_items WHERE cart_id = $1`, abandoned); n != 0 {
				t.Error("the abandoned cart's items are still there")
			}
			for _, id := range []string{inFlight, recentCart} {
				if n := count(t, r, `SELECT COUNT(*) FROM carts c JOIN cart_items i ON i.cart_id = c.id WHERE c.id = $1`, id); n != 1 {
					t.Errorf("cart %s (in flight or recent) was purged", id)
				}
			}
			if n := count(t, r, `SELECT COUNT(*) FROM carts`); n != 3 {
				t.Errorf("%d carts left, want the in-flight one and the two recent ones", n)
			}
			emails := map[string]string{oldFailed: "", oldDone: "old.done@example.test", recentFailed: "recent.failed@example.test", "co_running": "running@example.test"}
			for co, want := range emails {
				var got string
				if err := r.a.DB.Read().QueryRowContext(ctx, `SELECT email FROM checkouts WHERE id = $1`, co).Scan(&got); err != nil {
					t.Fatalf("checkout %s: %v", co, err)
				}
				if got != want {
					t.Errorf("checkout %s: email %q, want %q", co, got, want)
				}
			}
			if n := count(t, r, `SELECT COUNT(*) FROM idempotency_keys WHERE key = 'running'`); n != 1 {
				t.Error("a key still in progress was purged")
			}
			if n := count(t, r, `SELECT COUNT(*) FROM idempotency_keys`); n != recentKeys+1 {
				t.Errorf("%d idempotency keys left, want the %d recent ones and the running one", n, recentKeys)
			}
			purged := purgedMetric(t, r)
			want := map[string]int64{app.RetentionCarts: cartsBefore - 3, app.RetentionIdempotencyKeys: keysBefore - recentKeys - 1, app.RetentionFailedCheckouts: 1}
			for kind, n := range want {
				if purged[kind] != n {
					t.Errorf("godwit.retention.purged{kind=%s} = %d, want %d (all: %v)", kind, purged[kind], n, purged)
				}
			}
			rep, err := r.a.Verify(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range rep.Violations {
				if v != "checkout co_running: still in progress at step charging past its lease" {
					t.Errorf("verify after retention: %s", v)
				}
			}
		})
	}
}

func firstProduct(r *rig) string {
	r.tb.Helper()
	list, _ := r.must("GET", "/v1/products", "", nil, nil)["products"].([]any)
	if len(list) == 0 {
		r.tb.Fatal("the demo catalog is empty")
	}
	return list[0].(map[string]any)["id"].(string)
}

// guestCheckout checks out a fresh guest cart and returns the checkout id.
func guestCheckout(r *rig, product, token, email string, want int) string {
	r.tb.Helper()
	body := map[string]any{"cart_id": r.cartWith("", product), "payment": map[string]any{"token": token}, "email": email}
	if code, m := r.call("POST", "/v1/checkout", "", body, idem("ret")); code != want {
		r.tb.Fatalf("guest checkout with %s: %d %v, want %d", token, code, m, want)
	}
	var id string // a declined checkout's answer does not name it
	if err := r.a.DB.Read().QueryRow(`SELECT id FROM checkouts WHERE email = $1`, email).Scan(&id); err != nil {
		r.tb.Fatalf("checkout of %s: %v", email, err)
	}
	return id
}

func exec(t *testing.T, r *rig, q string, args ...any) {
	t.Helper()
	err := r.a.DB.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, r *rig, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := r.a.DB.Read().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

var purgedLine = regexp.MustCompile(`(?m)^godwit_retention_purged_total\{([^}]*)\} (\d+)`)

// purgedMetric reads godwit.retention.purged by kind from /metrics.
func purgedMetric(t *testing.T, r *rig) map[string]int64 {
	t.Helper()
	_, text, _ := r.raw("GET", "/metrics", "", nil, nil)
	out := map[string]int64{}
	for _, m := range purgedLine.FindAllStringSubmatch(string(text), -1) {
		kind := regexp.MustCompile(`kind="([^"]*)"`).FindStringSubmatch(m[1])
		n, _ := strconv.ParseInt(m[2], 10, 64)
		if kind != nil {
			out[kind[1]] += n
		}
	}
	if len(out) == 0 {
		t.Logf("no godwit_retention_purged_total in /metrics:\n%s", fmt.Sprint(len(text)))
	}
	return out
}
