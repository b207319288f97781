package notify_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingSender counts deliveries per message and fails while down is set.
type recordingSender struct {
	mu   sync.Mutex
	down bool
	sent map[string]int
}

func (s *recordingSender) Send(_ context.Context, e notify.Email) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("smtp unavailable")
	}
	s.sent[e.ID]++
	return nil
}

func enqueue(t *testing.T, d *db.DB, now time.Time, n int) {
	t.Helper()
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		for i := range n {
			if _, err := notify.Enqueue(ctx, tx, now, notify.Message{Kind: "order_confirmation", Reference: fmt.Sprintf("ord_%d", i),
				To: "a@example.com", Subject: "s", Body: "b"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOutboxRetriesWithBackoffAndNeverSendsTwice(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		snd := &recordingSender{sent: map[string]int{}, down: true}
		cfg := notify.WorkerConfig{DB: d, Sender: snd, Now: clk.Now, BaseBackoff: time.Second, MaxBackoff: time.Minute, Batch: 7}
		w1, w2 := notify.NewWorker(cfg), notify.NewWorker(cfg)
		enqueue(t, d, clk.Now(), 40)

		// Sender outage: nothing is lost, the retry waits 1s, then 2s.
		if n, err := w1.DeliverDue(ctx); err != nil || n != 0 {
			t.Fatalf("during outage sent %d, %v", n, err)
		}
		clk.Advance(500 * time.Millisecond)
		snd.mu.Lock()
		snd.down = false
		snd.mu.Unlock()
		total := 0
		for {
			n, err := w1.DeliverDue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != 33 {
			// 7 failed and back off 1s; the other 33 were never tried.
			t.Fatalf("sent %d before backoff elapsed, want 33", total)
		}
		clk.Advance(time.Second)
		// Two replicas race for what is due: each message goes exactly once.
		var wg sync.WaitGroup
		for _, w := range []*notify.Worker{w1, w2, w1, w2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, err := w.DeliverDue(ctx)
					if err != nil {
						t.Error(err)
					}
					if n == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		snd.mu.Lock()
		defer snd.mu.Unlock()
		if len(snd.sent) != 40 {
			t.Errorf("sent %d distinct messages, want 40", len(snd.sent))
		}
		for id, n := range snd.sent {
			if n != 1 {
				t.Errorf("message %s sent %d times", id, n)
			}
		}
	})
}

func TestDeadAfterMaxAttempts(t *testing.T) {
	d := dbtest.New(t, db.SQLite)
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	snd := &recordingSender{sent: map[string]int{}, down: true}
	w := notify.NewWorker(notify.WorkerConfig{DB: d, Sender: snd, Now: clk.Now, BaseBackoff: time.Second, MaxAttempts: 3})
	enqueue(t, d, clk.Now(), 1)
	for range 5 {
		_, _ = w.DeliverDue(ctx)
		clk.Advance(time.Hour)
	}
	var state string
	var attempts int
	if err := d.Read().QueryRowContext(ctx, `SELECT state, attempts FROM outbox`).Scan(&state, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != "dead" || attempts != 3 {
		t.Errorf("state %s after %d attempts, want dead after 3", state, attempts)
	}
}
