package apitest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/godwit-dev/godwit/api/apitest"
)

// BenchmarkChecker measures what checking one exchange (a GET answered with
// a Member) costs a test server, against serving it unchecked.
func BenchmarkChecker(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(member))
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"unchecked", h}, {"checked", apitest.Handler(b, h)}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/v1/members/m_1", nil)
			req.Header.Set("Authorization", "Bearer x")
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
