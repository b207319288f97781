package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func scrape(t *testing.T, h http.Handler, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// With a metrics token, /metrics answers only a scrape that sends it.
func TestMetricsToken(t *testing.T) {
	const token = "0123456789abcdef-metrics"
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Metrics: app.MetricsConfig{Token: token}})
	for _, bad := range []string{"", "Bearer wrong-token-wrong-token", "Bearer " + token + "x", token} {
		if rec := scrape(t, a.Handler, bad); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "metrics_token_required") {
			t.Errorf("/metrics with Authorization %q = %d %.100s, want 401 metrics_token_required", bad, rec.Code, rec.Body)
		}
	}
	if rec := scrape(t, a.Handler, "Bearer "+token); rec.Code != 200 || !strings.Contains(rec.Body.String(), "# TYPE") {
		t.Errorf("/metrics with the token = %d %.100s", rec.Code, rec.Body)
	}
	if _, err := app.New(t.Context(), app.Config{DSN: dbtest.DSN(t, db.SQLite), DataDir: t.TempDir(), Metrics: app.MetricsConfig{Token: "short"}}); err == nil {
		t.Error("a metrics token of 5 characters was accepted")
	}
}

// With a listener of its own, /metrics is not on the API's.
func TestMetricsSeparate(t *testing.T) {
	a := newTestAppWith(t, app.Config{DSN: dbtest.DSN(t, db.SQLite), Metrics: app.MetricsConfig{Separate: true}})
	if rec := scrape(t, a.Handler, ""); rec.Code != http.StatusNotFound {
		t.Errorf("/metrics on the API listener = %d, want 404", rec.Code)
	}
	if rec := scrape(t, a.Metrics, ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "# TYPE") {
		t.Errorf("App.Metrics = %d %.100s", rec.Code, rec.Body)
	}
	// The default stays convenient: open on the API listener.
	b := newTestApp(t)
	if rec := scrape(t, b.Handler, ""); rec.Code != 200 {
		t.Errorf("default /metrics = %d", rec.Code)
	}
}
