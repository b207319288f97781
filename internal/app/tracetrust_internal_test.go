package app

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// Baggage from a caller without a valid token is dropped, so it is never
// passed on to peers under this process's service token; a token holder's
// baggage goes through.
func TestDistrustAnonymousTracesDropsBaggage(t *testing.T) {
	keys, err := auth.NewKeys([]byte("0123456789abcdef0123456789abcdef"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	var untrusted bool
	h := distrustAnonymousTraces(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen, untrusted = r.Header.Get("Baggage"), untrustedTraceContext(r)
	}), keys)
	svc, _ := keys.Mint(auth.ScopeService, "checkout", time.Hour)
	for _, c := range []struct {
		token, want string
		untrusted   bool
	}{{"", "", true}, {"Bearer nope", "", true}, {"Bearer " + svc, "synthetic=true", false}} {
		r := httptest.NewRequest("GET", "/v1/products", nil)
		r.Header.Set("Baggage", "synthetic=true")
		if c.token != "" {
			r.Header.Set("Authorization", c.token)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen != c.want || untrusted != c.untrusted {
			t.Errorf("Authorization %.20q: baggage %q untrusted %v, want %q %v", c.token, seen, untrusted, c.want, c.untrusted)
		}
	}
}
