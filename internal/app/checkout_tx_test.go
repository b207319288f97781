package app_test

import (
	"encoding/json"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TestCheckoutSharesTransactionsInOneProcess checks the wiring: with every
// service in the process, a checkout paid partly with points commits at most
// three times inside its checkout.process span (everything before the charge,
// the charge, everything after it), counted from the process's own trace
// view; the request's Idempotency-Key claim and answer commit outside it.
func TestCheckoutSharesTransactionsInOneProcess(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: e, cfg: app.Config{Demo: true}})
			w := seedWorld(r)
			res := r.buy(w.selfToken, w.productID, map[string]any{"payment": map[string]any{"token": "tok_visa"}, "points_to_redeem": 100})
			if res["status"] != "confirmed" {
				t.Fatalf("checkout: %v", res)
			}
			_, raw, _ := r.raw("GET", "/v1/admin/traces/"+res["trace_id"].(string), w.adminToken, nil, nil)
			var view struct {
				Spans []struct {
					SpanID       string `json:"span_id"`
					ParentSpanID string `json:"parent_span_id"`
					Name         string `json:"name"`
				} `json:"spans"`
			}
			if err := json.Unmarshal(raw, &view); err != nil {
				t.Fatalf("trace view: %v (%s)", err, raw)
			}
			parent := map[string]string{}
			process := ""
			for _, s := range view.Spans {
				parent[s.SpanID] = s.ParentSpanID
				if s.Name == "checkout.process" {
					process = s.SpanID
				}
			}
			if process == "" {
				t.Fatalf("no checkout.process span in %s", raw)
			}
			under := func(id string) bool {
				for ; id != ""; id = parent[id] {
					if id == process {
						return true
					}
				}
				return false
			}
			commits, inside := 0, 0
			for _, s := range view.Spans {
				if s.Name == "sql.tx.commit" {
					commits++
					if under(s.SpanID) {
						inside++
					}
				}
			}
			t.Logf("%s: %d commits in the trace, %d inside checkout.process", e, commits, inside)
			if inside == 0 || inside > 3 {
				t.Errorf("%d commits inside checkout.process, want 1 to 3", inside)
			}
		})
	}
}
