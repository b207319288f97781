package httpx_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// guestRoute is counterRoute open to guests at pattern, answering also the
// owner its key was scoped to.
func guestRoute(d *db.DB, runs *atomic.Int64, pattern string, scope httpx.GuestScopeFunc) httpx.Route {
	rt := counterRoute(d, runs, 0)
	inner := rt.Handler
	rt.Pattern, rt.Access, rt.GuestScope = pattern, auth.Public, scope
	rt.Handler = func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Owner", httpx.IdempotencyOwner(r.Context()))
		return inner(w, r)
	}
	return rt
}

// byName scopes a guest's key to the body's "name" (as checkout scopes it to
// the cart).
func byName(_ *http.Request, body []byte) string {
	var b echoBody
	_ = json.Unmarshal(body, &b)
	return b.Name
}

// Two guests who pick the same Idempotency-Key must not collide (issue 16,
// fix 8), while a guest's own retry replays and the same key for another
// request on the same scope is still "reused".
func TestGuestIdempotencyKeysAreScoped(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, atomicMode bool) {
		var runs atomic.Int64
		scoped := guestRoute(d, &runs, "/v1/pay", byName)
		unscoped := guestRoute(d, &runs, "/v1/tip", nil)
		scoped.Atomic, unscoped.Atomic = atomicMode, atomicMode
		f := newFixture(t, d, scoped, unscoped)
		key := map[string]string{"Idempotency-Key": "same-key"}

		a := f.do(t, "POST", "/v1/pay", "", `{"name":"cart-a","amount":1}`, key)
		b := f.do(t, "POST", "/v1/pay", "", `{"name":"cart-b","amount":1}`, key)
		if a.status != 201 || b.status != 201 || b.header.Get("Idempotency-Replayed") != "" {
			t.Fatalf("two guests, one key: %d %s / %d %s", a.status, a.raw, b.status, b.raw)
		}
		retry := f.do(t, "POST", "/v1/pay", "", `{"name":"cart-a","amount":1}`, key)
		if retry.status != 201 || retry.header.Get("Idempotency-Replayed") != "true" || retry.raw != a.raw {
			t.Fatalf("guest retry: %d %s replayed=%q", retry.status, retry.raw, retry.header.Get("Idempotency-Replayed"))
		}
		if r := f.do(t, "POST", "/v1/pay", "", `{"name":"cart-a","amount":2}`, key); r.status != 422 || r.body["code"] != "idempotency_key_reused" {
			t.Fatalf("same scope, other body: %d %s", r.status, r.raw)
		}
		oa, ob := a.header.Get("X-Owner"), b.header.Get("X-Owner")
		if !strings.HasPrefix(oa, "guest:") || oa == ob || strings.Contains(oa, "cart-a") {
			t.Fatalf("guest owners %q and %q: want distinct hashed guest owners", oa, ob)
		}

		// Without a declared scope a guest's key is scoped to the whole request.
		c := f.do(t, "POST", "/v1/tip", "", `{"name":"x","amount":1}`, key)
		e := f.do(t, "POST", "/v1/tip", "", `{"name":"y","amount":1}`, key)
		if c.status != 201 || e.status != 201 || e.header.Get("Idempotency-Replayed") != "" {
			t.Fatalf("unscoped route, two guests: %d %s / %d %s", c.status, c.raw, e.status, e.raw)
		}
		if r := f.do(t, "POST", "/v1/tip", "", `{"name":"x","amount":1}`, key); r.header.Get("Idempotency-Replayed") != "true" || r.raw != c.raw {
			t.Fatalf("unscoped retry: %d %s", r.status, r.raw)
		}
		if got := effects(t, d); got != 4 {
			t.Fatalf("effects = %d, want 4 (two guests on each route)", got)
		}

		// An authenticated caller still owns its keys, whatever the body.
		tok := token(t, f.keys, auth.ScopeMember, "m-1")
		if r := f.do(t, "POST", "/v1/pay", tok, `{"name":"cart-a","amount":1}`, key); r.status != 201 || r.header.Get("X-Owner") != "member:m-1" {
			t.Fatalf("member: %d owner %q", r.status, r.header.Get("X-Owner"))
		}
	})
}
