package idempotency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// TestHeldClaimLease: a claim whose request is running is renewed and never
// taken over, however long the request takes; a claim whose process died (no
// renewals) is taken over within one lease, and the old holder can then
// neither complete nor release it.
func TestHeldClaimLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		const lease = 300 * time.Millisecond
		s := idempotency.NewStore(d, idempotency.Options{Lease: lease})

		live, err := s.Claim(ctx, "o", "live", "h")
		if err != nil || !live.Owned || live.Token == "" {
			t.Fatalf("claim = %+v, %v", live, err)
		}
		held := s.Hold("o", "live", live, nil)
		time.Sleep(4 * lease)
		if dup, err := s.Claim(ctx, "o", "live", "h"); err != nil || dup.Owned || !dup.InProgress {
			t.Fatalf("a running request's claim was taken over after %v: %+v, %v", 4*lease, dup, err)
		}
		if err := held.Complete(ctx, idempotency.Response{StatusCode: 201, Body: []byte("once")}); err != nil || held.Lost() {
			t.Fatalf("complete = %v (lost %v)", err, held.Lost())
		}

		dead, err := s.Claim(ctx, "o", "dead", "h")
		if err != nil || !dead.Owned {
			t.Fatalf("claim = %+v, %v", dead, err)
		}
		// Its process dies: nothing renews the claim.
		time.Sleep(lease + 50*time.Millisecond)
		retry, err := s.Claim(ctx, "o", "dead", "h")
		if err != nil || !retry.Owned || retry.Token == dead.Token {
			t.Fatalf("retry after the lease = %+v, %v", retry, err)
		}
		stale := s.Hold("o", "dead", dead, nil)
		if err := stale.Complete(ctx, idempotency.Response{StatusCode: 500}); !errors.Is(err, idempotency.ErrClaimLost) {
			t.Fatalf("the fenced-out holder completed: %v", err)
		}
		if err := s.Hold("o", "dead", dead, nil).Release(ctx); !errors.Is(err, idempotency.ErrClaimLost) {
			t.Fatalf("the fenced-out holder released: %v", err)
		}
		fresh := s.Hold("o", "dead", retry, nil)
		if err := fresh.Complete(ctx, idempotency.Response{StatusCode: 201, Body: []byte("retry")}); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.Claim(ctx, "o", "dead", "h"); r.Replay == nil || string(r.Replay.Body) != "retry" {
			t.Fatalf("replay = %+v", r)
		}
	})
}

// TestHeldClaimLostStopsRequest: a holder whose claim was taken over (its
// renewals failed for a whole lease) is told so, to stop its request.
func TestHeldClaimLostStopsRequest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now()
		clock := func() time.Time { return now }
		s := idempotency.NewStore(d, idempotency.Options{Lease: 150 * time.Millisecond, Now: clock})
		out, err := s.Claim(ctx, "o", "k", "h")
		if err != nil || !out.Owned {
			t.Fatal(out, err)
		}
		lost := make(chan struct{})
		held := s.Hold("o", "k", out, func() { close(lost) })
		defer held.Stop()
		// Another store's clock is past the lease: it takes the claim over.
		other := idempotency.NewStore(d, idempotency.Options{Lease: 150 * time.Millisecond, Now: func() time.Time { return now.Add(time.Hour) }})
		if took, err := other.Claim(ctx, "o", "k", "h"); err != nil || !took.Owned {
			t.Fatalf("takeover = %+v, %v", took, err)
		}
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("the holder was never told its claim was lost")
		}
	})
}
