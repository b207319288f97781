package stripehook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// arrivals records the simulated deliveries reaching the endpoint.
type arrivals struct {
	mu   sync.Mutex
	next http.Handler
	got  []arrival
}

type arrival struct {
	id, typ string
	at      time.Time
	status  int
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct{ ID, Type string }
	_ = json.Unmarshal(body, &ev)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusWriter{ResponseWriter: w, status: 200}
	a.next.ServeHTTP(rec, r)
	a.mu.Lock()
	a.got = append(a.got, arrival{id: ev.ID, typ: ev.Type, at: time.Now(), status: rec.status})
	a.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

func (a *arrivals) wait(t *testing.T, n int) []arrival {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		if len(a.got) >= n {
			out := append([]arrival(nil), a.got...)
			a.mu.Unlock()
			return out
		}
		a.mu.Unlock()
	}
	t.Fatalf("fewer than %d deliveries arrived", n)
	return nil
}

type senderRig struct {
	*harness
	sim    *payment.Simulator
	fs     *faults.Store
	sender *Sender
	got    *arrivals
}

func newSenderRig(t *testing.T, d *db.DB) *senderRig {
	h := newHarness(t, d, []string{secretNew, secretOld}, nil)
	h.fake.knowAll = true
	fs := faults.NewStore(faults.Config{DB: d, TTL: time.Nanosecond})
	sim := payment.NewSimulator(payment.SimulatorConfig{DB: d, Faults: fs})
	sender := NewSender(SenderConfig{Secret: secretNew, Faults: fs})
	got := &arrivals{next: h.api}
	sender.SetTarget(got)
	sim.OnSettled(sender.Settled)
	t.Cleanup(sender.Close)
	return &senderRig{harness: h, sim: sim, fs: fs, sender: sender, got: got}
}

func (r *senderRig) charge(t *testing.T, key string) payment.Charge {
	t.Helper()
	c, err := r.sim.Charge(context.Background(), payment.ChargeRequest{IdempotencyKey: key, Amount: money.Money{Amount: 1500, Currency: "USD"}, Token: "tok_visa"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *senderRig) set(t *testing.T, point string, v faults.Settings) {
	t.Helper()
	if _, err := r.fs.Set(context.Background(), point, v); err != nil {
		t.Fatal(err)
	}
}

// The simulator's settled charges reach the endpoint as signed Stripe
// events: a charge settles its checkout once, a refund arrives as
// charge.refunded; duplicated and delayed deliveries change nothing more.
func TestSimulatedWebhooks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newSenderRig(t, d)
		c := r.charge(t, "co_sim_1")
		got := r.got.wait(t, 1)
		if got[0].typ != TypeSucceeded || got[0].status != 200 {
			t.Fatalf("arrived %+v", got)
		}
		if e := r.stored(got[0].id); e.State != stateProcessed || e.ChargeID != c.ID || !e.Godwit {
			t.Errorf("stored %+v", e)
		}
		if _, err := r.sim.Refund(context.Background(), c.ID, money.Money{Amount: 500, Currency: "USD"}, "rf-sim-1"); err != nil {
			t.Fatal(err)
		}
		got = r.got.wait(t, 2)
		if got[1].typ != TypeRefunded {
			t.Fatalf("arrived %+v", got)
		}
		r.fake.mu.Lock()
		refunded := r.fake.refunds[c.ID]
		r.fake.mu.Unlock()
		if refunded != (money.Money{Amount: 500, Currency: "USD"}) {
			t.Errorf("refund applied %v", refunded)
		}

		// Duplicated and delayed.
		r.set(t, FaultPointDuplicate, faults.Settings{Fail: true})
		r.set(t, FaultPointDelay, faults.Settings{DelayMS: 300})
		start := time.Now()
		c2 := r.charge(t, "co_sim_2")
		got = r.got.wait(t, 4)
		if got[2].id != got[3].id || got[2].at.Sub(start) < 300*time.Millisecond {
			t.Errorf("duplicate deliveries %+v (started %v)", got[2:], start)
		}
		if n := r.fake.settleCount(c2.ID); n != 1 {
			t.Errorf("duplicated event settled %d times", n)
		}
		if n := r.count(); n != 3 {
			t.Errorf("%d events stored, want 3", n)
		}
	})
}

// With the reorder fault, an event is held back until the next one has
// been delivered, and the endpoint still applies both.
func TestSimulatedWebhooksReordered(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		r := newSenderRig(t, d)
		r.set(t, FaultPointReorder, faults.Settings{Fail: true})
		first := r.charge(t, "co_sim_a")
		time.Sleep(50 * time.Millisecond) // the first is held before the second settles
		if _, err := r.sim.Refund(context.Background(), first.ID, money.Money{Amount: 1500, Currency: "USD"}, "rf-sim-a"); err != nil {
			t.Fatal(err)
		}
		got := r.got.wait(t, 2)
		if got[0].typ != TypeRefunded || got[1].typ != TypeSucceeded {
			t.Errorf("arrival order %s, %s; want the refund first", got[0].typ, got[1].typ)
		}
		if n := r.fake.settleCount(first.ID); n != 1 {
			t.Errorf("settled %d times", n)
		}
		// A lone event is released after ReorderHold.
		start := time.Now()
		r.charge(t, "co_sim_b")
		got = r.got.wait(t, 3)
		if wait := got[2].at.Sub(start); wait < ReorderHold {
			t.Errorf("a lone held event arrived after %v", wait)
		}
	})
}
