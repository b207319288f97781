package app

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// MinMetricsTokenLen is the shortest --metrics-token accepted.
const MinMetricsTokenLen = 16

// MetricsConfig says who may read /metrics. The zero value serves it on the
// API listener to anyone, which is convenient on loopback and nowhere else:
// the scrape is megabytes of business counters and costs the process a walk
// over every series.
type MetricsConfig struct {
	// Token, when set, must be sent as "Authorization: Bearer <token>" on
	// every scrape (Prometheus: authorization.credentials_file). It is a
	// shared secret of its own, not a Godwit token.
	Token string
	// Separate takes /metrics off the API listener: the caller serves
	// App.Metrics on an address of its own (serve's --metrics-addr).
	Separate bool
}

func (c MetricsConfig) check() error {
	if c.Token != "" && len(c.Token) < MinMetricsTokenLen {
		return errors.New("the metrics token must be at least 16 characters (e.g. openssl rand -hex 32)")
	}
	return nil
}

// guard returns h behind the bearer token, or h itself when there is none.
func (c MetricsConfig) guard(h http.Handler) http.Handler {
	if c.Token == "" {
		return h
	}
	want := []byte("Bearer " + c.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			httpx.WriteError(w, r, nil, errs.Coded(errs.Unauthorized, "metrics_token_required", "/metrics needs the metrics bearer token"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
