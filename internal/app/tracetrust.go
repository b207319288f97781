package app

import (
	"context"
	"net/http"

	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// untrustedTraceKey marks a request whose caller showed no valid token.
type untrustedTraceKey struct{}

// distrustAnonymousTraces keeps callers without a valid bearer token out of
// other traces. Trace ids are in every response, so anyone could otherwise
// send a known checkout's traceparent, add spans to it and force it sampled.
// Following the OpenTelemetry guidance for untrusted boundaries, such a
// request starts a trace of its own with a link to the context it sent
// (otelhttp does that when untrustedTraceContext says so), and its baggage is
// dropped so it is not passed on to peers under our service token. A valid
// token (member, service, admin; peers call with service tokens, so a split
// checkout stays one trace) keeps the caller's parent. Only the signature and
// expiry are checked here, an HMAC and no database read; revocation and
// policy are httpx's business as before.
func distrustAnonymousTraces(next http.Handler, keys *auth.Keys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header
		if h.Get("Traceparent") == "" && h.Get("Tracestate") == "" && h.Get("Baggage") == "" {
			next.ServeHTTP(w, r)
			return
		}
		if p, err := keys.Authenticate(h.Get("Authorization")); err == nil && p != nil {
			next.ServeHTTP(w, r)
			return
		}
		r = r.Clone(context.WithValue(r.Context(), untrustedTraceKey{}, true))
		r.Header.Del("Baggage")
		next.ServeHTTP(w, r)
	})
}

// untrustedTraceContext tells otelhttp to start a new trace linked to the
// caller's context instead of continuing it (see distrustAnonymousTraces).
func untrustedTraceContext(r *http.Request) bool {
	v, _ := r.Context().Value(untrustedTraceKey{}).(bool)
	return v
}
