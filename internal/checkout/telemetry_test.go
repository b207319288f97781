package checkout_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

func attrs(s sdktrace.ReadOnlySpan) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func spansOf(rec *tracetest.SpanRecorder, traceID trace.TraceID) map[string][]sdktrace.ReadOnlySpan {
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == traceID {
			out[s.Name()] = append(out[s.Name()], s)
		}
	}
	return out
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	for _, e := range s.Events() {
		if e.Name == name {
			return true
		}
	}
	return false
}

func TestCheckoutTrace(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		f := newFixture(t, d, fixtureOpts{tp: tp, mp: mp, local: o.local})
		ctx := context.Background()
		a, b, c := f.product(t, "TEL-A", 1000, 10), f.product(t, "TEL-B", 2000, 10), f.product(t, "TEL-C", 3000, 10)
		member := "mem_tel"
		f.loyalty.setBalance(member, 1000)
		tok := f.token(t, auth.ScopeMember, member)
		const email = "secret.person@example.com"

		cartID := f.cart(t, member, map[string]int64{a.ID: 1, b.ID: 1, c.ID: 2})
		r := f.do(t, "POST", "/v1/checkout", tok, "tel-1", checkoutBody(cartID, "tok_visa", email, 200))
		if r.status != 201 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		traceID, err := trace.TraceIDFromHex(r.str("trace_id"))
		if err != nil {
			t.Fatalf("trace_id %q: %v", r.str("trace_id"), err)
		}
		spans := spansOf(rec, traceID)
		for name, n := range map[string]int{"checkout.process": 1, "cart.validate": 1, "cart.fetch_contents": 1, "cart.verify_prices": 1,
			"inventory.reserve_batch": 1, "inventory.reserve_item": 3, "payment.process": 1, "payment.gateway_call": 1, "order.create": 1} {
			if len(spans[name]) != n {
				t.Errorf("%d %s spans in the trace, want %d", len(spans[name]), name, n)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		proc := spans["checkout.process"][0]
		pa := attrs(proc)
		for k, want := range map[string]any{"cart.id": cartID, "user.id": member, "checkout.total": int64(9000), "checkout.item_count": int64(3),
			"order.id": r.str("order_id"), "checkout.step": "complete"} {
			if got := pa[k].AsInterface(); got != want {
				t.Errorf("checkout.process %s = %v, want %v", k, got, want)
			}
		}
		for _, e := range []string{"cart_validated", "payment_processed", "order_created"} {
			if !hasEvent(proc, e) {
				t.Errorf("checkout.process lacks event %s", e)
			}
		}
		for _, name := range []string{"payment.process", "payment.gateway_call"} {
			if k := spans[name][0].SpanKind(); k != trace.SpanKindClient {
				t.Errorf("%s kind = %v, want client", name, k)
			}
		}
		gw := attrs(spans["payment.gateway_call"][0])
		if gw["peer.service"].AsString() != "payment-simulator" || gw["payment.status"].AsString() != "succeeded" || gw["payment.charge_id"].AsString() == "" {
			t.Errorf("gateway attributes: %v", gw)
		}
		if _, ok := gw["payment.gateway_latency_ms"]; !ok {
			t.Error("no payment.gateway_latency_ms")
		}
		// The ids that tie the steps together, as the seed carries them: the
		// reservation's on cart.validate (which runs before the stock is
		// taken) and on each reserve_item, the order's on payment.process
		// (which runs before the order exists).
		resID := attrs(spans["inventory.reserve_batch"][0])["inventory.reservation_id"].AsString()
		if resID == "" || pa["inventory.reservation_id"].AsString() != resID {
			t.Errorf("reservation id: reserve_batch %q, checkout.process %q", resID, pa["inventory.reservation_id"].AsString())
		}
		if got := attrs(spans["cart.validate"][0])["inventory.reservation_id"].AsString(); got != resID {
			t.Errorf("cart.validate inventory.reservation_id = %q, want %q", got, resID)
		}
		for _, it := range spans["inventory.reserve_item"] {
			if attrs(it)["product.id"].AsString() == "" {
				t.Error("reserve_item without product.id")
			}
			if got := attrs(it)["reservation.id"].AsString(); got != resID {
				t.Errorf("reserve_item reservation.id = %q, want %q", got, resID)
			}
		}
		if got := attrs(spans["payment.process"][0])["order.id"].AsString(); got == "" || got != r.str("order_id") {
			t.Errorf("payment.process order.id = %q, want the order's id %q", got, r.str("order_id"))
		}
		if spans["cart.validate"][0].Parent().SpanID() != proc.SpanContext().SpanID() ||
			spans["payment.gateway_call"][0].Parent().SpanID() != spans["payment.process"][0].SpanContext().SpanID() {
			t.Error("spans are not nested as the seed shows")
		}

		// The confirmation's delivery is a new trace linked to this checkout's.
		dir := t.TempDir()
		w := notify.NewWorker(notify.WorkerConfig{DB: d, Sender: notify.FileSender{Dir: dir}, Now: f.clock.Now, TracerProvider: tp})
		if n, err := w.DeliverDue(ctx); err != nil || n != 1 {
			t.Fatalf("delivered %d, %v", n, err)
		}
		var linked bool
		for _, s := range rec.Ended() {
			if s.Name() == "notify.deliver" {
				for _, l := range s.Links() {
					linked = linked || l.SpanContext.TraceID() == traceID
				}
			}
		}
		if !linked {
			t.Error("notify.deliver is not linked to the checkout's trace")
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		if len(files) != 1 {
			t.Fatalf("eml files: %v", files)
		}
		eml, _ := os.ReadFile(files[0])
		for _, want := range []string{"To: <" + email + ">\r\n", "Subject: Your Godwit order " + r.str("order_id"), "Content-Type: text/plain", "\r\n\r\nThank you"} {
			if !strings.Contains(string(eml), want) {
				t.Errorf("eml lacks %q:\n%s", want, eml)
			}
		}

		// Failures carry their facts: a price mismatch, a shortage, a decline.
		if _, err := f.catalog.Update(ctx, a.ID, catalogNew(a.SKU, 1100)); err != nil {
			t.Fatal(err)
		}
		cart2 := f.cart(t, "", map[string]int64{a.ID: 1})
		if _, err := f.catalog.Update(ctx, a.ID, catalogNew(a.SKU, 1200)); err != nil {
			t.Fatal(err)
		}
		r2 := f.do(t, "POST", "/v1/checkout", "", "tel-2", checkoutBody(cart2, "tok_visa", email, 0))
		tid2, _ := trace.TraceIDFromHex(r2.str("trace_id"))
		s2 := spansOf(rec, tid2)
		if len(s2["cart.verify_prices"]) != 1 || !hasEvent(s2["cart.verify_prices"][0], "price_mismatch") ||
			attrs(s2["checkout.process"][0])["checkout.failure_step"].AsString() != "validating_cart" {
			t.Errorf("price mismatch not traced (%d %s)", r2.status, r2.raw)
		}
		cart3 := f.cart(t, "", map[string]int64{b.ID: 50})
		r3 := f.do(t, "POST", "/v1/checkout", "", "tel-3", checkoutBody(cart3, "tok_visa", email, 0))
		tid3, _ := trace.TraceIDFromHex(r3.str("trace_id"))
		if s3 := spansOf(rec, tid3); len(s3["inventory.reserve_item"]) != 1 || !hasEvent(s3["inventory.reserve_item"][0], "insufficient_stock") {
			t.Errorf("insufficient stock not traced (%d %s)", r3.status, r3.raw)
		}
		cart4 := f.cart(t, "", map[string]int64{b.ID: 1})
		r4 := f.do(t, "POST", "/v1/checkout", "", "tel-4", checkoutBody(cart4, "tok_chargeDeclinedLostCard", email, 0))
		tid4, _ := trace.TraceIDFromHex(r4.str("trace_id"))
		if s4 := spansOf(rec, tid4); len(s4["payment.gateway_call"]) != 1 || attrs(s4["payment.gateway_call"][0])["payment.decline_code"].AsString() != "lost_card" ||
			attrs(s4["checkout.process"][0])["checkout.failure_step"].AsString() != "processing_payment" {
			t.Errorf("decline not traced (%d %s)", r4.status, r4.raw)
		}

		// A slowed gateway dominates the checkout.
		if _, err := f.sim.SetFaults(ctx, payment.Faults{LatencyMS: 400}); err != nil {
			t.Fatal(err)
		}
		cart5 := f.cart(t, "", map[string]int64{c.ID: 1})
		r5 := f.do(t, "POST", "/v1/checkout", "", "tel-5", checkoutBody(cart5, "tok_visa", email, 0))
		tid5, _ := trace.TraceIDFromHex(r5.str("trace_id"))
		s5 := spansOf(rec, tid5)
		if r5.status != 201 || len(s5["payment.gateway_call"]) != 1 {
			t.Fatalf("slow checkout: %d %s", r5.status, r5.raw)
		}
		gwDur := s5["payment.gateway_call"][0].EndTime().Sub(s5["payment.gateway_call"][0].StartTime())
		procDur := s5["checkout.process"][0].EndTime().Sub(s5["checkout.process"][0].StartTime())
		if gwDur*2 <= procDur {
			t.Errorf("gateway %v is not most of checkout %v", gwDur, procDur)
		}

		// No email address on any span.
		for _, s := range rec.Ended() {
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.Emit(), "@") {
					t.Errorf("span %s attribute %s carries an address", s.Name(), kv.Key)
				}
			}
			for _, e := range s.Events() {
				for _, kv := range e.Attributes {
					if strings.Contains(kv.Value.Emit(), "@") {
						t.Errorf("span %s event %s carries an address", s.Name(), e.Name)
					}
				}
			}
		}

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				seen[m.Name] = true
			}
		}
		for _, name := range []string{"checkout.completed", "checkout.duration_ms", "checkout.step_duration_ms"} {
			if !seen[name] {
				t.Errorf("metric %s not recorded", name)
			}
		}
	})
}
