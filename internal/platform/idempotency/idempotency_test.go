package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

func TestClaimLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		s := idempotency.NewStore(d, idempotency.Options{Now: func() time.Time { return now }, Lease: time.Minute})

		first, err := s.Claim(ctx, "member:m1", "k1", "h1")
		if err != nil || !first.Owned {
			t.Fatalf("first claim = %+v, %v", first, err)
		}
		busy, err := s.Claim(ctx, "member:m1", "k1", "h1")
		if err != nil || !busy.InProgress || busy.Owned {
			t.Fatalf("second claim while running = %+v, %v", busy, err)
		}
		if _, err := s.Claim(ctx, "member:m1", "k1", "other"); errs.CodeOf(err) != "idempotency_key_reused" {
			t.Fatalf("different hash: %v", err)
		}
		// The first request's process dies; after the lease a retry takes over.
		now = now.Add(2 * time.Minute)
		took, err := s.Claim(ctx, "member:m1", "k1", "h1")
		if err != nil || !took.Owned {
			t.Fatalf("claim after lease = %+v, %v", took, err)
		}
		if err := s.Complete(ctx, "member:m1", "k1", idempotency.Response{StatusCode: 201, ContentType: "application/json", Body: []byte(`{"ok":true}`)}); err != nil {
			t.Fatal(err)
		}
		done, err := s.Claim(ctx, "member:m1", "k1", "h1")
		if err != nil || done.Replay == nil || done.Replay.StatusCode != 201 || string(done.Replay.Body) != `{"ok":true}` {
			t.Fatalf("replay = %+v, %v", done, err)
		}
		// Release only frees pending claims, never a stored response.
		if err := s.Release(ctx, "member:m1", "k1"); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.Claim(ctx, "member:m1", "k1", "h1"); again.Replay == nil {
			t.Fatal("release dropped a completed record")
		}
		n, err := s.Purge(ctx, now.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("purge = %d, %v", n, err)
		}
	})
}

func TestValidateKey(t *testing.T) {
	for key, ok := range map[string]bool{"abc-123": true, "": false, "has space": false, "tab\t": false, "é": false} {
		if err := idempotency.ValidateKey(key); (err == nil) != ok {
			t.Errorf("ValidateKey(%q) = %v", key, err)
		}
	}
}
