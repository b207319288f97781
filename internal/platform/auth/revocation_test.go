package auth_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// openDB opens and migrates the database at dsn: one handle per simulated
// process, as two replicas (or a replica and a `godwit` command) would have.
func openDB(t *testing.T, dsn string) *db.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := db.Open(ctx, dsn, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := db.Migrate(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

func newKeys(t *testing.T) *auth.Keys {
	t.Helper()
	k, err := auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openRevocations(t *testing.T, d *db.DB, o auth.RevocationOptions) *auth.Revocations {
	t.Helper()
	r, err := auth.OpenRevocations(context.Background(), d, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// eachEngine runs fn on a fresh database per engine, giving its DSN.
func eachEngine(t *testing.T, fn func(t *testing.T, e db.Engine, dsn string)) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) { fn(t, e, dbtest.DSN(t, e)) })
	}
}

func mintPrincipal(t *testing.T, k *auth.Keys, subject string, ttl time.Duration) *auth.Principal {
	t.Helper()
	tok, err := k.Mint(auth.ScopeMember, subject, ttl)
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func isRevoked(t *testing.T, r *auth.Revocations, id string) bool {
	t.Helper()
	ok, err := r.IsRevoked(context.Background(), id)
	if err != nil {
		t.Fatalf("IsRevoked: %v", err)
	}
	return ok
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A token revoked by one process is refused by itself at once and by another
// process on the same database within 1 s: by the poll on SQLite, by
// LISTEN/NOTIFY alone on PostgreSQL (the other's poll is an hour), and by the
// poll alone on PostgreSQL too.
func TestRevocationReachesEveryReplicaWithinASecond(t *testing.T) {
	keys := newKeys(t)
	eachEngine(t, func(t *testing.T, e db.Engine, dsn string) {
		dA, dB := openDB(t, dsn), openDB(t, dsn)
		a := openRevocations(t, dA, auth.RevocationOptions{})
		others := map[string]*auth.Revocations{"poll": openRevocations(t, dB, auth.RevocationOptions{})}
		if e == db.Postgres {
			others["listen"] = openRevocations(t, openDB(t, dsn), auth.RevocationOptions{ListenDSN: dsn, Poll: time.Hour})
		}

		// Readers hammer the sets while revocations land (for -race).
		var stop atomic.Bool
		var readers sync.WaitGroup
		for _, r := range append([]*auth.Revocations{a}, others["poll"]) {
			readers.Go(func() {
				for !stop.Load() {
					_, _ = r.IsRevoked(context.Background(), "nobody")
				}
			})
		}
		defer func() { stop.Store(true); readers.Wait() }()

		for i := range 3 {
			p := mintPrincipal(t, keys, "m"+string(rune('1'+i)), time.Hour)
			for name, b := range others {
				if isRevoked(t, b, p.TokenID) {
					t.Fatalf("%s: token revoked before Revoke", name)
				}
			}
			if err := a.Revoke(context.Background(), p, "admin:test"); err != nil {
				t.Fatal(err)
			}
			if !isRevoked(t, a, p.TokenID) {
				t.Fatal("the revoking process still accepts the token after Revoke returned")
			}
			for name, b := range others {
				eventually(t, time.Second, name+": the other process refuses the token", func() bool { return isRevoked(t, b, p.TokenID) })
			}
		}
	})
}

// A new process knows every unexpired revocation before it answers anything,
// and a row committed late with an older revoked_at (another process's clock,
// a slow commit) is still picked up.
func TestRevocationsLoadedAtStartAndOutOfOrderRows(t *testing.T) {
	keys := newKeys(t)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		first := openRevocations(t, d, auth.RevocationOptions{})
		old := mintPrincipal(t, keys, "m1", time.Hour)
		if err := first.Revoke(context.Background(), old, "admin:test"); err != nil {
			t.Fatal(err)
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}

		r := openRevocations(t, d, auth.RevocationOptions{})
		if !isRevoked(t, r, old.TokenID) {
			t.Fatal("a revocation made before start is not known at start")
		}

		// Newest seen so far: now. Then a row stamped 20 s earlier commits.
		newer := mintPrincipal(t, keys, "m2", time.Hour)
		if err := first.Revoke(context.Background(), newer, "admin:test"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "newer revocation", func() bool { return isRevoked(t, r, newer.TokenID) })
		late := mintPrincipal(t, keys, "m3", time.Hour)
		err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (token_id, subject, revoked_by, revoked_at, expires_at) VALUES ($1, 'member:m3', 'admin:test', $2, $3)`,
				late.TokenID, db.Micros(time.Now().Add(-20*time.Second)), db.Micros(late.Expires))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "late-committed revocation", func() bool { return isRevoked(t, r, late.TokenID) })
	})
}

// Revocations leave memory once their token has expired.
func TestRevocationForgottenAfterExpiry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		keys, err := auth.NewKeys(secret, clock)
		if err != nil {
			t.Fatal(err)
		}
		r := openRevocations(t, d, auth.RevocationOptions{Now: clock, Poll: 10 * time.Millisecond})
		p := mintPrincipal(t, keys, "m1", time.Minute)
		if err := r.Revoke(context.Background(), p, "admin:test"); err != nil {
			t.Fatal(err)
		}
		if !isRevoked(t, r, p.TokenID) {
			t.Fatal("not revoked")
		}
		mu.Lock()
		now = now.Add(2 * time.Minute)
		mu.Unlock()
		eventually(t, 5*time.Second, "expired revocation dropped", func() bool { return !isRevoked(t, r, p.TokenID) })
	})
}

// When the database cannot be read for longer than MaxStale, the check fails
// closed with 503 auth_unavailable, and Healthy says so.
func TestRevocationsFailClosedWhenStale(t *testing.T) {
	eachEngine(t, func(t *testing.T, e db.Engine, dsn string) {
		d := openDB(t, dsn)
		r := openRevocations(t, d, auth.RevocationOptions{Poll: 10 * time.Millisecond, MaxStale: 100 * time.Millisecond})
		if err := r.Healthy(); err != nil {
			t.Fatalf("fresh set unhealthy: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "stale set refused", func() bool {
			_, err := r.IsRevoked(context.Background(), "any")
			return errs.Is(err, "auth_unavailable") && errs.KindOf(err) == errs.Unavailable
		})
		if err := r.Healthy(); !errs.Is(err, "auth_unavailable") {
			t.Errorf("Healthy on a stale set: %v", err)
		}
	})
}

// BenchmarkIsRevoked measures the per-request check, which used to be a
// database query and is now a lookup in memory.
func BenchmarkIsRevoked(b *testing.B) {
	d := dbtest.New(b, db.SQLite)
	r, err := auth.OpenRevocations(context.Background(), d, auth.RevocationOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.IsRevoked(ctx, "0123456789abcdef01234567"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
