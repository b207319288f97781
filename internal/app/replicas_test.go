package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// countingSender stands in for one SMTP relay shared by every replica and
// counts each message id it is handed.
type countingSender struct {
	mu   sync.Mutex
	sent map[string]int
}

func (c *countingSender) Send(_ context.Context, e notify.Email) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[e.ID]++
	return nil
}

func (c *countingSender) snapshot() (messages, duplicates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.sent {
		messages++
		if n > 1 {
			duplicates++
		}
	}
	return messages, duplicates
}

// TestTwoReplicasOneDatabase runs two full replicas (every service and every
// background job) on one database and drives a flash sale and a double-spend
// attempt through both at once: no oversell, no double spend, no confirmation
// sent twice, and the books verify.
func TestTwoReplicasOneDatabase(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dsn := dbtest.DSN(t, engine)
			relay := &countingSender{sent: map[string]int{}}
			jobs := app.JobIntervals{Outbox: 20 * time.Millisecond, LoyaltyHoldReaper: 50 * time.Millisecond}
			replicas := []*app.App{
				newTestAppWith(t, app.Config{DSN: dsn, Demo: true, Sender: relay, Jobs: jobs}),
				newTestAppWith(t, app.Config{DSN: dsn, Sender: relay, Jobs: jobs}),
			}
			var jobsDone sync.WaitGroup
			clients := make([]client, len(replicas))
			for i, a := range replicas {
				srv := apitest.Server(t, a.Handler)
				t.Cleanup(srv.Close)
				clients[i] = client{t: t, base: srv.URL}
				jobsDone.Go(func() { a.RunJobs(ctx) })
			}
			defer func() { cancel(); jobsDone.Wait() }()
			admin := mint(t, replicas[0], auth.ScopeAdmin, "ops")
			svc := mint(t, replicas[0], auth.ScopeService, "airline")

			// Flash sale: 10 units, 40 buyers spread over both replicas.
			_, products := clients[0].call("GET", "/v1/products", "", nil, nil)
			product := products["products"].([]any)[0].(map[string]any)["id"].(string)
			if code, body := clients[1].call("PUT", "/v1/admin/inventory/"+product, admin, map[string]any{"available": 10}, nil); code != 200 {
				t.Fatalf("set stock: %d %v", code, body)
			}
			const buyers = 40
			codes := make([]int, buyers)
			var wg sync.WaitGroup
			for i := range buyers {
				wg.Go(func() {
					c := clients[i%2]
					code, cart := c.call("POST", "/v1/carts", "", map[string]any{}, nil)
					if code != 201 {
						codes[i] = code
						return
					}
					id := cart["id"].(string)
					if code, _ := c.call("POST", "/v1/carts/"+id+"/items", "", map[string]any{"product_id": product, "quantity": 1}, nil); code >= 300 {
						codes[i] = code
						return
					}
					codes[i], _ = c.call("POST", "/v1/checkout", "", map[string]any{
						"cart_id": id, "payment": map[string]any{"token": "tok_visa"}, "email": fmt.Sprintf("buyer%d@example.test", i),
					}, map[string]string{"Idempotency-Key": fmt.Sprintf("flash-%d", i)})
				})
			}
			wg.Wait()
			orders, soldOut := 0, 0
			for i, code := range codes {
				switch code {
				case 201:
					orders++
				case 409:
					soldOut++
				default:
					t.Errorf("buyer %d: status %d", i, code)
				}
			}
			if orders != 10 || soldOut != buyers-10 {
				t.Fatalf("flash sale: %d orders, %d sold out; want 10 and %d", orders, soldOut, buyers-10)
			}
			if _, stock := clients[0].call("GET", "/v1/admin/inventory/"+product, admin, nil, nil); stock["available"] != float64(0) {
				t.Fatalf("stock after the sale = %v, want 0", stock["available"])
			}

			// Double spend: 2,475 points, 40 transfers of 100 through both replicas.
			for _, m := range []string{"sender", "receiver"} {
				if code, body := clients[0].call("POST", "/v1/members", svc, map[string]any{"id": m, "name": m, "email": m + "@example.test"}, nil); code != 201 {
					t.Fatalf("member %s: %d %v", m, code, body)
				}
			}
			if code, body := clients[1].call("POST", "/v1/members/sender/activities", svc, map[string]any{
				"type": "flight", "external_id": "R-1",
				"flight": map[string]any{"distance_miles": 2475, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "LAX"},
			}, nil); code != 201 {
				t.Fatalf("earn: %d %v", code, body)
			}
			sender := mint(t, replicas[0], auth.ScopeMember, "sender")
			ok := make([]bool, 40)
			for i := range ok {
				wg.Go(func() {
					code, _ := clients[i%2].call("POST", "/v1/members/sender/transfers", sender, map[string]any{"to_member_id": "receiver", "points": 100},
						map[string]string{"Idempotency-Key": fmt.Sprintf("xfer-%d", i)})
					ok[i] = code == 201
				})
			}
			wg.Wait()
			moved := 0
			for _, o := range ok {
				if o {
					moved++
				}
			}
			_, s := clients[1].call("GET", "/v1/members/sender", sender, nil, nil)
			if moved != 24 || s["balance"] != float64(75) {
				t.Fatalf("double spend: %d transfers of 100 succeeded from 2,475 points, balance %v; want 24 and 75", moved, s["balance"])
			}

			// Background work: every confirmation delivered once, by either replica.
			deadline := time.Now().Add(10 * time.Second)
			for {
				messages, dups := relay.snapshot()
				if dups > 0 {
					t.Fatalf("%d confirmations were sent more than once", dups)
				}
				if messages == 10 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of 10 confirmations delivered", messages)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for i, a := range replicas {
				rep, err := a.Verify(context.Background(), 0)
				if err != nil || !rep.OK {
					t.Fatalf("replica %d verify: %v %v", i, rep.Violations, err)
				}
			}
		})
	}
}
