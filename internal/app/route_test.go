package app_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// routedSpan returns the SERVER span of the buffered trace whose url.path is
// path, failing the test when none has ended within a few seconds (a large
// answer can reach the client before the handler returns and ends the span).
func routedSpan(t *testing.T, tel *telemetry.Telemetry, method, path string) telemetry.SpanView {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, sum := range tel.Traces.Recent(telemetry.RecentFilter{Limit: 500}) {
			id, err := trace.TraceIDFromHex(sum.TraceID)
			if err != nil {
				t.Fatal(err)
			}
			view, _ := tel.Traces.Trace(id)
			for _, s := range view.Spans {
				if s.Kind == "server" && s.Attributes["url.path"] == path && s.Attributes["http.request.method"] == method {
					return s
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server span for %s %s in the trace buffer", method, path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Server spans carry the matched route template as http.route and are named
// "METHOD /template" (HTTP semantic conventions), not the outer mux's "/v1/";
// a request no route matches has no http.route.
func TestServerSpansCarryTheRouteTemplate(t *testing.T) {
	r := newRig(t, rigOptions{cfg: app.Config{Demo: true}})
	w := seedWorld(r)
	admin := r.token(auth.ScopeAdmin, "route-test")
	activity, err := json.Marshal(flight("route-pnr-1", 1200))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, token, route string
		status                     int
		body                       []byte
	}{
		{"GET", "/v1/products/" + w.productID, "", "/v1/products/{id}", 200, nil},
		{"POST", "/v1/members/" + w.self + "/activities", admin, "/v1/members/{id}/activities", 201, activity},
		{"GET", "/v1/members/" + w.self + "/statement", w.selfToken, "/v1/members/{id}/statement", 200, nil},
		{"GET", "/v1/members/" + w.self + "/points", w.selfToken, "/v1/members/{id}/points", 200, nil},
		{"GET", "/v1/members/" + w.self, admin, "/v1/members/{id}", 200, nil},
		{"GET", "/v1/products", "", "/v1/products", 200, nil},
		{"GET", "/v1/members/nobody-here", admin, "/v1/members/{id}", 404, nil},
	} {
		if code, _, _ := r.raw(c.method, c.path, c.token, c.body, nil); code != c.status {
			t.Fatalf("%s %s = %d, want %d", c.method, c.path, code, c.status)
		}
		s := routedSpan(t, r.tel, c.method, c.path)
		if s.Attributes["http.route"] != c.route || s.Name != c.method+" "+c.route {
			t.Errorf("%s %s: span %q with http.route %v, want %q and %q", c.method, c.path, s.Name, s.Attributes["http.route"], c.method+" "+c.route, c.route)
		}
	}
	if code, _, _ := r.raw("GET", "/v1/no/such/route", admin, nil, nil); code != http.StatusNotFound {
		t.Fatalf("unknown route = %d", code)
	}
	if s := routedSpan(t, r.tel, "GET", "/v1/no/such/route"); s.Attributes["http.route"] != nil || s.Name != "GET" {
		t.Errorf("unmatched request: span %q with http.route %v, want GET and none", s.Name, s.Attributes["http.route"])
	}
}

// The documented slow-checkout query finds checkouts although their root is
// the server span: ?name= matches any span of a trace, and min_ms that span.
func TestTraceListFindsCheckoutsBySpanName(t *testing.T) {
	r := newRig(t, rigOptions{cfg: app.Config{Demo: true}})
	w := seedWorld(r)
	res := r.buy(w.selfToken, w.productID, map[string]any{"payment": map[string]any{"token": "tok_visa"}})
	if res["status"] != "confirmed" {
		t.Fatalf("checkout: %v", res)
	}
	checkoutTrace := res["trace_id"].(string)
	list := func(query string) []string {
		t.Helper()
		m := r.must("GET", "/v1/admin/traces?"+query, w.adminToken, nil, nil)
		var ids []string
		for _, tr := range m["traces"].([]any) {
			ids = append(ids, tr.(map[string]any)["trace_id"].(string))
		}
		return ids
	}
	// seedWorld checked out once too: two checkouts, and nothing else.
	if got := list("name=checkout.process&min_ms=0"); len(got) != 2 || !slices.Contains(got, checkoutTrace) {
		t.Errorf("?name=checkout.process = %v, want the two checkouts' traces, %s among them", got, checkoutTrace)
	}
	if got := list("name=POST%20/v1/checkout"); !slices.Contains(got, checkoutTrace) {
		t.Errorf("?name=POST /v1/checkout (the root) = %v, want the checkout's trace", got)
	}
	if got := list("name=checkout.process&min_ms=600000"); len(got) != 0 {
		t.Errorf("?name=checkout.process&min_ms=600000 = %v, want none", got)
	}
}
