package loyalty_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func attrMap(kvs []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// TestEarnSpans reads the spans of one earn request and checks every span
// and attribute of the telemetry catalogue, the tree, and that no email is
// anywhere.
func TestEarnSpans(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.promo(t, program.Promotion{ID: "double", Name: "Double flights", ActivityTypes: []string{"flight"}, MultiplierBP: 20000})
		e.member(t, "m")
		e.earn(t, "m", hotel("h0", 250_000)) // 25,000: silver
		e.spans.Reset()

		r := e.do(t, "POST", "/v1/members/m/activities", e.service(t),
			activity("flight", "f1", map[string]any{"distance_miles": 2475, "fare_class": "J", "cabin": "business", "origin": "JFK", "destination": "LAX"}))
		if r.status != 201 {
			t.Fatalf("earn: %d %s", r.status, r.raw)
		}
		var res map[string]any
		r.json(t, &res)

		spans := e.spans.Ended()
		byName := map[string]sdktrace.ReadOnlySpan{}
		var servers []sdktrace.ReadOnlySpan
		for _, s := range spans {
			if s.SpanKind() == trace.SpanKindServer {
				servers = append(servers, s)
			}
			if strings.HasPrefix(s.Name(), "loyalty.") {
				if _, dup := byName[s.Name()]; dup {
					t.Errorf("span %s twice", s.Name())
				}
				byName[s.Name()] = s
			}
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.Emit(), "@") {
					t.Errorf("span %s attribute %s carries an email: %s", s.Name(), kv.Key, kv.Value.Emit())
				}
			}
			for _, ev := range s.Events() {
				for _, kv := range ev.Attributes {
					if strings.Contains(kv.Value.Emit(), "@") {
						t.Errorf("span %s event %s carries an email", s.Name(), ev.Name)
					}
				}
			}
		}
		if len(servers) != 1 {
			t.Fatalf("%d SERVER spans, want 1", len(servers))
		}
		server := servers[0]
		if got := server.SpanContext().TraceID().String(); res["trace_id"] != got {
			t.Errorf("response trace_id %v, server span trace %s", res["trace_id"], got)
		}
		earn := byName["loyalty.earn_points"]
		if earn == nil {
			t.Fatal("no loyalty.earn_points span")
		}
		if earn.SpanKind() != trace.SpanKindInternal || earn.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("earn_points: kind %v, parent %v, want internal under the server span", earn.SpanKind(), earn.Parent().SpanID())
		}
		want := map[string]map[string]any{
			"loyalty.earn_points": {
				"loyalty.member_id": "m", "loyalty.activity_type": "flight", "loyalty.transaction_type": "earn",
				"loyalty.total_points_earned": int64(3093 + 773 + 3093), "loyalty.base_points": int64(3093),
				"loyalty.tier_bonus": int64(773), "loyalty.promo_bonus": int64(3093), "loyalty.new_balance": int64(25000 + 6959),
				"loyalty.result": "credited", "loyalty.transaction_id": res["transaction_id"],
			},
			"loyalty.load_member": {"loyalty.tier": "silver", "loyalty.current_balance": int64(25000), "loyalty.ytd_qualifying_points": int64(25000)},
			"loyalty.calculate_base": {
				"loyalty.base_points": int64(3093), "loyalty.earning_rate": "125%",
				"loyalty.flight_miles": int64(2475), "loyalty.fare_class": "J", "loyalty.cabin": "business",
			},
			"loyalty.apply_tier_bonus": {"loyalty.tier": "silver", "loyalty.tier_multiplier": 1.25, "loyalty.tier_bonus_points": int64(773)},
			"loyalty.check_promotions": {"loyalty.promo_bonus_points": int64(3093), "loyalty.promo_applied": true, "loyalty.promotions": []string{"double"}},
			"loyalty.credit_points":    {"loyalty.new_balance": int64(31959)},
		}
		for name, attrs := range want {
			s := byName[name]
			if s == nil {
				t.Errorf("no %s span", name)
				continue
			}
			if s.SpanContext().TraceID() != server.SpanContext().TraceID() {
				t.Errorf("%s in another trace", name)
			}
			if name != "loyalty.earn_points" && s.Parent().SpanID() != earn.SpanContext().SpanID() {
				t.Errorf("%s is not a child of loyalty.earn_points", name)
			}
			got := attrMap(s.Attributes())
			for k, v := range attrs {
				if !cmp.Equal(got[k], v) {
					t.Errorf("%s %s = %#v, want %#v", name, k, got[k], v)
				}
			}
			if s.Status().Code.String() == "Error" {
				t.Errorf("%s has error status", name)
			}
		}

		// A business rejection is an attribute, not a span error.
		e.spans.Reset()
		r = e.do(t, "POST", "/v1/members/m/activities", e.service(t), activity("flight", "f2", map[string]any{"distance_miles": 100, "fare_class": "X"}))
		if r.status != 422 {
			t.Fatalf("bad fare: %d", r.status)
		}
		for _, s := range e.spans.Ended() {
			if s.Name() == "loyalty.earn_points" {
				if got := attrMap(s.Attributes())["loyalty.result"]; got != "invalid_activity" || s.Status().Code.String() == "Error" {
					t.Errorf("rejected earn: result %v, status %v", got, s.Status())
				}
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "a")
		e.member(t, "b")
		e.earn(t, "a", flight("f1", 1000, "Y"))
		e.earn(t, "a", flight("f1", 1000, "Y")) // a replay earns nothing
		e.earn(t, "b", hotel("h1", 10_000))
		if _, err := e.svc.HoldPoints(ctx, "b", 400, "r1"); err != nil {
			t.Fatal(err)
		}
		var rm metricdata.ResourceMetrics
		if err := e.reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		earned := map[string]int64{}
		var outstanding int64 = -1
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch data := m.Data.(type) {
				case metricdata.Sum[int64]:
					if m.Name == "loyalty.points_earned_total" {
						for _, dp := range data.DataPoints {
							at, _ := dp.Attributes.Value("loyalty.activity_type")
							tier, _ := dp.Attributes.Value("loyalty.tier")
							earned[fmt.Sprintf("%s/%s", at.AsString(), tier.AsString())] += dp.Value
						}
					}
				case metricdata.Gauge[int64]:
					if m.Name == "loyalty.points_outstanding" {
						outstanding = data.DataPoints[0].Value
					}
				}
			}
		}
		if diff := cmp.Diff(map[string]int64{"flight/blue": 1000, "hotel/blue": 1000}, earned); diff != "" {
			t.Errorf("points_earned_total (-want +got):\n%s", diff)
		}
		if outstanding != 2000 {
			t.Errorf("points_outstanding %d, want 2000", outstanding)
		}
	})
}
