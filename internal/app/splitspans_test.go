package app_test

import (
	"slices"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// bufferedSpans returns the spans of trace id in r's trace buffer.
func bufferedSpans(t *testing.T, r *rig, id string) []telemetry.SpanView {
	t.Helper()
	tid, err := trace.TraceIDFromHex(id)
	if err != nil {
		t.Fatal(err)
	}
	view, _ := r.tel.Traces.Trace(tid)
	return view.Spans
}

// A good checkout with the order service in a process of its own has no span
// in error on either side: the saga asks the order service for the
// checkout's order before creating it, and the 404 it expects ("not yet") is
// an answer, not a failure — neither the caller's client span nor order's
// server span may say otherwise (an error span made the collector keep every
// checkout and `godwit trace` report "1 with errors").
func TestSplitCheckoutHasNoErrorSpan(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dsn := dbtest.DSN(t, e)
			orders := newRig(t, rigOptions{dsn: dsn, cfg: app.Config{Services: []string{"order"}}})
			var rest []string
			for _, s := range app.AllServices {
				if s != "order" {
					rest = append(rest, s)
				}
			}
			r := newRig(t, rigOptions{dsn: dsn, cfg: app.Config{Demo: true, Services: rest, Peers: map[string]string{"order": orders.srv.URL}}})
			w := seedWorld(r)
			res := r.buy(w.selfToken, w.productID, map[string]any{"payment": map[string]any{"token": "tok_visa"}, "points_to_redeem": 100})
			if res["status"] != "confirmed" {
				t.Fatalf("checkout: %v", res)
			}
			id := res["trace_id"].(string)
			const lookup = "GET /internal/v1/orders/by-checkout/{checkout_id}"
			var sides []string
			for _, side := range []struct {
				name string
				r    *rig
			}{{"gateway", r}, {"order", orders}} {
				spans := bufferedSpans(t, side.r, id)
				if len(spans) == 0 {
					t.Fatalf("%s: no spans of the checkout's trace", side.name)
				}
				for _, s := range spans {
					if s.Status.Code == "error" {
						t.Errorf("%s: span %s (%s) is in error: %q %v", side.name, s.Name, s.Kind, s.Status.Message, s.Attributes)
					}
					if s.Name == lookup && s.Attributes["http.response.status_code"] == int64(404) {
						sides = append(sides, side.name+" "+s.Kind)
					}
				}
			}
			// The test means something only if the lookup missed on both sides.
			slices.Sort(sides)
			if !slices.Equal(sides, []string{"gateway client", "order server"}) {
				t.Errorf("404 lookups seen as %v, want the gateway's client span and order's server span", sides)
			}
		})
	}
}
