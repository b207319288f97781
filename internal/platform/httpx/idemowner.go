package httpx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// GuestScopeFunc names what an anonymous request acts on (the cart a guest
// checks out), read from the request and its body; "" when it names nothing.
type GuestScopeFunc func(r *http.Request, body []byte) string

type ownerKey struct{}

// idempotencyOwner is who an Idempotency-Key belongs to. An authenticated
// caller owns its keys (its actor). Guests have no identity, and one shared
// owner would make two unrelated guests who picked the same key collide; a
// guest's key is therefore scoped to what the request acts on (rt.GuestScope,
// e.g. the cart), so that the same guest retrying replays and reusing the key
// for another body on the same cart is still 422, or — on a route that
// declares no scope — to the request's fingerprint, so that only an identical
// request replays. The scope is hashed: a client-supplied value never lands
// in the owner column as it was sent.
func idempotencyOwner(rt Route, r *http.Request, body []byte, hash string) string {
	p := auth.FromContext(r.Context())
	if p != nil {
		return p.Actor()
	}
	scope := ""
	if rt.GuestScope != nil {
		scope = rt.GuestScope(r, body)
	}
	var in string
	if scope != "" {
		in = "scope\x00" + r.Method + " " + rt.Pattern + "\x00" + scope
	} else {
		in = "request\x00" + hash
	}
	sum := sha256.Sum256([]byte(in))
	return "guest:" + hex.EncodeToString(sum[:16])
}

// IdempotencyOwner is the owner the request's Idempotency-Key was scoped to
// (see Route.GuestScope): the caller's actor, or for a guest "guest:" and a
// hash of the request's guest scope. A handler that derives ids from the key
// (a checkout's id) derives them from (IdempotencyOwner, key), so that two
// guests' equal keys name different things. Without a key it is the actor.
func IdempotencyOwner(ctx context.Context) string {
	if o, ok := ctx.Value(ownerKey{}).(string); ok {
		return o
	}
	return auth.FromContext(ctx).Actor()
}
