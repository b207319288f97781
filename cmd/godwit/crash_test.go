package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// crashLease is the checkout lease and reservation TTL of the crash runs: work
// a kill interrupts is recoverable this long after it started.
const crashLease = 2 * time.Second

// TestCrashLoop is a shortened scripts/crashloop.sh: load, SIGKILL at a random
// moment, restart, recover, and verify with no grace — three times per engine.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop skipped in -short mode")
	}
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			dataDir := t.TempDir()
			var dbArgs []string
			if engine == db.Postgres {
				dbArgs = []string{"--db", dbtest.DSN(t, db.Postgres)}
			}
			serveArgs := append([]string{"--data-dir", dataDir,
				"--reservation-ttl", crashLease.String(), "--checkout-lease", crashLease.String(),
				"--recovery-interval", "1s", "--reaper-interval", "1s", "--hold-reaper-interval", "1s",
				"--outbox-interval", "200ms", "--log-level", "warn", "--demo"}, dbArgs...) // demo data on PostgreSQL too
			s := startServer(t, nil, serveArgs...)
			token := s.token
			if token == "" {
				out, err := exec.Command(binary, append([]string{"token", "--data-dir", dataDir}, append(dbArgs, "admin", "crash-test")...)...).Output()
				if err != nil {
					t.Fatalf("token: %v", err)
				}
				token = strings.TrimSpace(string(out))
			}
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
			const kills = 3
			for i := 1; i <= kills; i++ {
				load := exec.Command(binary, append([]string{"loadgen", "--target", s.base, "--data-dir", dataDir,
					"--duration", "60s", "--vus", "6", "--members", "12", "--no-verify", "--seed", strconv.Itoa(i)}, dbArgs...)...)
				var loadOut bytes.Buffer
				load.Stdout, load.Stderr = &loadOut, &loadOut
				if err := load.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(400+rng.IntN(1600)) * time.Millisecond)
				if err := s.cmd.Process.Kill(); err != nil { // SIGKILL
					t.Fatal(err)
				}
				<-s.done
				_ = load.Process.Kill()
				_ = load.Wait()

				s = startServer(t, nil, serveArgs...)
				// Past the lease and the retry window (one more lease), after which
				// the recovery pass takes over what nobody retried.
				time.Sleep(2*crashLease + 500*time.Millisecond)
				req, _ := http.NewRequest("POST", s.base+"/v1/admin/checkouts/recover", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("recover after kill %d: %d", i, res.StatusCode)
				}
				time.Sleep(1200 * time.Millisecond) // the reaper and the outbox run on 1s timers
				var out, errOut bytes.Buffer
				err = run(context.Background(), []string{"verify", "--target", s.base, "--token", token, "--grace", "0s"}, &out, &errOut, func(string) string { return "" })
				if err != nil {
					t.Fatalf("after kill %d: %v\n%s%s\nloadgen:\n%s", i, err, out.String(), errOut.String(), loadOut.String())
				}
				t.Logf("kill %d survived: %s", i, strings.TrimSpace(out.String()))
			}
			if err, _ := s.stop(t); err != nil {
				t.Fatalf("final stop: %v\n%s", err, s.stderr)
			}
		})
	}
}

// TestCrashRetryTakesOver is the customer's view of a crash: a guest
// checkout is in flight when the server is SIGKILLed, held by a 3 s latency
// fault at one of three places — the payment simulator's charge (killed
// before the charge), order.create (after the charge, before the order) and
// order.created (after the order) — and the server restarts at once. Right
// after the restart verify reports no violation (the dead saga's effects are
// in flight until its lease runs out); the client then retries with the same
// Idempotency-Key, and the retry takes the checkout over once the dead
// process's leases run out (--checkout-lease, default 6 s) and answers 201 with
// the order — before, it answered idempotency_key_in_progress for five minutes
// and then checkout_aborted. Exactly one charge and one order exist, and
// verify is clean again.
func TestCrashRetryTakesOver(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	kills := []struct {
		name, path      string
		charges, orders int // what the kill leaves of the checkout
	}{
		{"before the charge", "/v1/admin/faults/payment", 0, 0},
		{"between the charge and the order", "/v1/admin/faults/order.create", 1, 0},
		{"after the order", "/v1/admin/faults/order.created", 1, 1},
	}
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			dataDir := t.TempDir()
			dsn := filepath.Join(dataDir, "godwit.db")
			var dbArgs []string
			if engine == db.Postgres {
				dsn = dbtest.DSN(t, db.Postgres)
				dbArgs = []string{"--db", dsn}
			}
			serveArgs := append([]string{"--data-dir", dataDir, "--recovery-interval", "1s", "--log-level", "warn", "--demo"}, dbArgs...) // demo data on PostgreSQL too
			s := startServer(t, nil, serveArgs...)
			out, err := exec.Command(binary, append([]string{"token", "--data-dir", dataDir}, append(dbArgs, "admin", "crash-test")...)...).Output()
			if err != nil {
				t.Fatalf("token: %v", err)
			}
			token := strings.TrimSpace(string(out))
			verify := func(when string) {
				t.Helper()
				var vout, verr bytes.Buffer
				if err := run(context.Background(), []string{"verify", "--target", s.base, "--token", token, "--grace", "0s"}, &vout, &verr, func(string) string { return "" }); err != nil {
					t.Fatalf("verify %s: %v\n%s%s", when, err, vout.String(), verr.String())
				}
			}
			engineT := t // the restarted server outlives each kill's subtest
			for i, kill := range kills {
				t.Run(kill.name, func(t *testing.T) {
					setFault(t, s.base, token, kill.path, 3000)
					body := guestCheckoutBody(t, s, 1)
					charges, orders := chargesAndOrders(t, dsn, "")
					key := "crash-retry-" + strconv.Itoa(i)
					go func() { _, _ = checkoutOnce(s.base, key, body) }() // dies with the server
					time.Sleep(1500 * time.Millisecond)                    // inside the fault's 3 s
					if err := s.cmd.Process.Kill(); err != nil {           // SIGKILL
						t.Fatal(err)
					}
					<-s.done
					s = startServer(engineT, nil, serveArgs...)
					start := time.Now()
					// The fault held the saga where the kill was meant to land.
					if c, o := chargesAndOrders(t, dsn, ""); c-charges != kill.charges || o-orders != kill.orders {
						t.Errorf("the kill left %d charges and %d orders, want %d and %d", c-charges, o-orders, kill.charges, kill.orders)
					}
					verify("right after the restart")
					setFault(t, s.base, token, kill.path, 0) // the retry is not held again
					var code int
					var res map[string]any
					for time.Since(start) < 2*time.Minute { // generous: the outcome is asserted; the time is logged
						if code, res = checkoutOnce(s.base, key, body); code == 201 || (code != 409 && code != 0) {
							break
						}
						time.Sleep(time.Second)
					}
					took := time.Since(start)
					if code != 201 || res["status"] != "confirmed" {
						t.Fatalf("retry after the crash: %d %v\nstderr:\n%s", code, res, s.stderr)
					}
					if again, res2 := checkoutOnce(s.base, key, body); again != 201 || res2["order_id"] != res["order_id"] {
						t.Errorf("second retry: %d %v", again, res2)
					}
					checkoutID, _ := res["checkout_id"].(string)
					if charges, orders := chargesAndOrders(t, dsn, checkoutID); charges != 1 || orders != 1 {
						t.Errorf("checkout %s: %d charges and %d orders, want one of each", checkoutID, charges, orders)
					}
					verify("after the retry")
					t.Logf("killed %s: the retry answered 201 %.1f s after the restart (order %v)", kill.name, took.Seconds(), res["order_id"])
				})
			}
		})
	}
}

// setFault sets the latency of the fault point at path (an admin route).
func setFault(t *testing.T, base, token, path string, latencyMS int) {
	t.Helper()
	body := fmt.Sprintf(`{"delay_ms":%d}`, latencyMS)
	if path == "/v1/admin/faults/payment" {
		body = fmt.Sprintf(`{"latency_ms":%d}`, latencyMS)
	}
	req, _ := http.NewRequest("PUT", base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("fault %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("fault %s: %d %s", path, res.StatusCode, b)
	}
}

// chargesAndOrders counts a checkout's charges (any status but declined:
// the gateway's idempotency key is the checkout id) and orders, reading the
// database directly; every checkout's for an empty checkoutID.
func chargesAndOrders(t *testing.T, dsn, checkoutID string) (charges, orders int) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dsn, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM payment_charges WHERE ($1 = '' OR idempotency_key = $1) AND status <> 'declined'`, checkoutID).Scan(&charges); err != nil {
		t.Fatal(err)
	}
	if err := d.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM orders WHERE ($1 = '' OR checkout_id = $1)`, checkoutID).Scan(&orders); err != nil {
		t.Fatal(err)
	}
	return charges, orders
}

// guestCheckoutBody makes a guest cart holding qty of the first demo product
// and returns the checkout request for it.
func guestCheckoutBody(t *testing.T, s *server, qty int) map[string]any {
	t.Helper()
	_, products := s.get(t, "/v1/products", "")
	var list struct {
		Products []struct {
			ID string `json:"id"`
		} `json:"products"`
	}
	if err := json.Unmarshal([]byte(products), &list); err != nil || len(list.Products) == 0 {
		t.Fatalf("products: %v %s", err, products)
	}
	code, cart := s.post(t, "/v1/carts", "", map[string]any{}, nil)
	if code != 201 {
		t.Fatalf("cart: %d %v", code, cart)
	}
	id := cart["id"].(string)
	if code, b := s.post(t, "/v1/carts/"+id+"/items", "", map[string]any{"product_id": list.Products[0].ID, "quantity": qty}, nil); code >= 300 {
		t.Fatalf("add item: %d %v", code, b)
	}
	return map[string]any{"cart_id": id, "payment": map[string]any{"token": "tok_visa"}, "email": "guest@example.test"}
}

// checkoutOnce posts a guest checkout with key; code 0 means no answer.
func checkoutOnce(base, key string, body map[string]any) (int, map[string]any) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/v1/checkout", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}
