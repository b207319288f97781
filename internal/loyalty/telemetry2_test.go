package loyalty_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func spansByName(t *testing.T, spans []sdktrace.ReadOnlySpan) map[string][]sdktrace.ReadOnlySpan {
	t.Helper()
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		out[s.Name()] = append(out[s.Name()], s)
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "@") {
				t.Errorf("span %s attribute %s carries an email", s.Name(), kv.Key)
			}
		}
	}
	return out
}

func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]any) {
	t.Helper()
	got := attrMap(s.Attributes())
	for k, v := range want {
		if !cmp.Equal(got[k], v) {
			t.Errorf("%s %s = %#v, want %#v", s.Name(), k, got[k], v)
		}
	}
}

func TestRedeemSpans(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 500_000)) // gold
		e.spans.Reset()

		r := e.do(t, "POST", "/v1/members/m/redemptions", e.memberTok(t, "m"), map[string]any{"option_id": "award-domestic-economy"})
		if r.status != 201 {
			t.Fatalf("redeem: %d %s", r.status, r.raw)
		}
		var res loyalty.RedemptionResult
		r.json(t, &res)
		byName := spansByName(t, e.spans.Ended())
		var server sdktrace.ReadOnlySpan
		for _, s := range e.spans.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				server = s
			}
		}
		redeem := byName["loyalty.redeem_points"]
		if len(redeem) != 1 || server == nil {
			t.Fatalf("%d redeem_points spans, server %v", len(redeem), server)
		}
		root := redeem[0]
		if root.SpanKind() != trace.SpanKindInternal || root.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("redeem_points: kind %v, not under the server span", root.SpanKind())
		}
		checkAttrs(t, root, map[string]any{
			"loyalty.member_id": "m", "loyalty.redemption_type": "award_flight", "loyalty.transaction_type": "redeem",
			"loyalty.current_balance": int64(50000), "loyalty.redemption_result": "success",
			"loyalty.points_deducted": int64(11875), "loyalty.new_balance": int64(38125),
		})
		for name, attrs := range map[string]map[string]any{
			"loyalty.calculate_redemption_cost": {"loyalty.points_needed": int64(12500), "loyalty.redemption_discount": 0.05, "loyalty.final_cost": int64(11875)},
			"loyalty.debit_points":              {"loyalty.debit_success": true, "loyalty.new_balance": int64(38125)},
			"loyalty.fulfill_redemption":        {"loyalty.fulfillment_status": "confirmed", "loyalty.confirmation_code": res.Confirmation},
		} {
			ss := byName[name]
			if len(ss) != 1 {
				t.Errorf("%d %s spans", len(ss), name)
				continue
			}
			if ss[0].Parent().SpanID() != root.SpanContext().SpanID() {
				t.Errorf("%s is not a child of loyalty.redeem_points", name)
			}
			checkAttrs(t, ss[0], attrs)
		}
		if root.Status().Code.String() == "Error" {
			t.Error("successful redemption has error status")
		}

		// Insufficient balance: the seed's result and points_short, no error status, no debit.
		e.spans.Reset()
		if _, err := e.svc.Redeem(ctx, "m", "merch-carry-on", ""); err == nil {
			t.Fatal("redeemed more than the balance")
		}
		byName = spansByName(t, e.spans.Ended())
		checkAttrs(t, byName["loyalty.redeem_points"][0], map[string]any{
			"loyalty.redemption_result": "insufficient_balance", "loyalty.points_short": int64(57000 - 38125),
		})
		if byName["loyalty.redeem_points"][0].Status().Code.String() == "Error" || len(byName["loyalty.debit_points"]) != 0 {
			t.Error("insufficient balance: error status or a debit span")
		}

		// Fulfilment failure.
		if _, err := e.svc.SetFulfillmentFault(ctx, true, 0); err != nil {
			t.Fatal(err)
		}
		e.spans.Reset()
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", ""); err == nil {
			t.Fatal("redeemed with a failing provider")
		}
		byName = spansByName(t, e.spans.Ended())
		checkAttrs(t, byName["loyalty.redeem_points"][0], map[string]any{"loyalty.redemption_result": "fulfillment_failed"})
		checkAttrs(t, byName["loyalty.fulfill_redemption"][0], map[string]any{"loyalty.fulfillment_status": "failed"})

		// Metrics: points redeemed by type and tier; latency by type.
		var rm metricdata.ResourceMetrics
		if err := e.reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		var redeemed int64
		var latencyCount uint64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch m.Name {
				case "loyalty.points_redeemed_total":
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						typ, _ := dp.Attributes.Value("loyalty.redemption_type")
						tier, _ := dp.Attributes.Value("loyalty.tier")
						if typ.AsString() != "award_flight" || tier.AsString() != "gold" {
							t.Errorf("points_redeemed_total attributes %v", dp.Attributes.ToSlice())
						}
						redeemed += dp.Value
					}
				case "loyalty.redemption_latency_ms":
					if m.Unit != "ms" {
						t.Errorf("latency unit %q", m.Unit)
					}
					for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
						latencyCount += dp.Count
					}
				}
			}
		}
		if redeemed != 11875 || latencyCount != 2 {
			t.Errorf("points_redeemed_total %d (want 11875), latency observations %d (want 2: success and fulfilment failure)", redeemed, latencyCount)
		}
	})
}

func TestExpirySpans(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, lotProgram(1))
		e.member(t, "a")
		e.member(t, "b")
		e.earn(t, "a", hotel("a1", 10_000))
		e.earn(t, "b", hotel("b1", 20_000))
		e.spans.Reset()
		if _, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{Now: date(2026, 7, 1)}); err != nil {
			t.Fatal(err)
		}
		byName := spansByName(t, e.spans.Ended())
		batch := byName["loyalty.expiration_batch"]
		if len(batch) != 1 {
			t.Fatalf("%d batch spans", len(batch))
		}
		checkAttrs(t, batch[0], map[string]any{
			"loyalty.transaction_type": "expiration", "loyalty.accounts_affected": int64(2), "loyalty.total_points_expired": int64(3000),
		})
		got := map[string]any{}
		for _, s := range byName["loyalty.expire_member_points"] {
			if s.Parent().SpanID() != batch[0].SpanContext().SpanID() {
				t.Error("expire_member_points is not a child of the batch")
			}
			a := attrMap(s.Attributes())
			got[a["loyalty.member_id"].(string)] = a["loyalty.points_expiring"]
		}
		if diff := cmp.Diff(map[string]any{"a": int64(1000), "b": int64(2000)}, got); diff != "" {
			t.Errorf("expire_member_points (-want +got):\n%s", diff)
		}
		var rm metricdata.ResourceMetrics
		if err := e.reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		var expired int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "loyalty.points_expired_total" {
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						expired += dp.Value
					}
				}
			}
		}
		if expired != 3000 {
			t.Errorf("points_expired_total %d, want 3000", expired)
		}
	})
}
