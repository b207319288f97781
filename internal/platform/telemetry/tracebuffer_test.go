package telemetry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// bufferTracer returns a tracer whose spans go only to buf.
func bufferTracer(t *testing.T, buf *telemetry.TraceBuffer) trace.Tracer {
	t.Helper()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(buf),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "inventory"))),
	)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("test")
}

// span starts and ends a span at fixed times, returning its context for children.
func span(ctx context.Context, tr trace.Tracer, name string, startMS, endMS int, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, s := tr.Start(ctx, name, append(opts, trace.WithTimestamp(at(startMS)))...)
	s.End(trace.WithTimestamp(at(endMS)))
	return ctx, s
}

func rootNames(sums []telemetry.TraceSummary) []string {
	names := make([]string, len(sums))
	for i, s := range sums {
		names[i] = s.RootName
	}
	return names
}

func TestTraceBufferEvictsOldestTrace(t *testing.T) {
	t.Parallel()
	buf := telemetry.NewTraceBuffer(3, 10)
	tr := bufferTracer(t, buf)
	var ids []trace.TraceID
	for i := range 5 {
		_, s := span(t.Context(), tr, fmt.Sprintf("trace %d", i), i*10, i*10+5)
		ids = append(ids, s.SpanContext().TraceID())
	}

	if got := buf.Len(); got != 3 {
		t.Errorf("Len = %d, want 3", got)
	}
	for i, id := range ids {
		_, ok := buf.Trace(id)
		if want := i >= 2; ok != want {
			t.Errorf("trace %d present = %v, want %v", i, ok, want)
		}
	}
	if diff := cmp.Diff([]string{"trace 4", "trace 3", "trace 2"}, rootNames(buf.Recent(telemetry.RecentFilter{}))); diff != "" {
		t.Errorf("Recent (-want +got):\n%s", diff)
	}
}

func TestTraceBufferCapsSpansPerTraceButKeepsRoot(t *testing.T) {
	t.Parallel()
	buf := telemetry.NewTraceBuffer(10, 3)
	tr := bufferTracer(t, buf)
	ctx, root := tr.Start(t.Context(), "root", trace.WithTimestamp(at(0)))
	for i := range 5 {
		span(ctx, tr, fmt.Sprintf("child %d", i), 10+i, 20+i)
	}
	root.End(trace.WithTimestamp(at(100))) // the root ends last, after the cap is reached

	view, ok := buf.Trace(root.SpanContext().TraceID())
	if !ok {
		t.Fatal("trace missing")
	}
	var names []string
	for _, s := range view.Spans {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"root", "child 0", "child 1"}, names); diff != "" {
		t.Errorf("kept spans (-want +got):\n%s", diff)
	}
	if view.DroppedSpans != 3 {
		t.Errorf("DroppedSpans = %d, want 3", view.DroppedSpans)
	}
	want := []telemetry.TraceSummary{{
		TraceID: root.SpanContext().TraceID().String(), RootName: "root", Service: "inventory",
		Start: at(0), DurationMS: 100, SpanCount: 3, DroppedSpans: 3,
	}}
	if diff := cmp.Diff(want, buf.Recent(telemetry.RecentFilter{})); diff != "" {
		t.Errorf("Recent (-want +got):\n%s", diff)
	}
}

func TestTraceBufferTraceView(t *testing.T) {
	t.Parallel()
	buf := telemetry.NewTraceBuffer(10, 10)
	tr := bufferTracer(t, buf)

	_, other := span(t.Context(), tr, "elsewhere", 0, 1)
	ctx, root := tr.Start(t.Context(), "POST /v1/checkout", trace.WithTimestamp(at(0)),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("http.request.method", "POST")))
	_, child := tr.Start(ctx, "charge payment", trace.WithTimestamp(at(5)), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(trace.Link{SpanContext: other.SpanContext()}))
	child.AddEvent("payment declined", trace.WithTimestamp(at(30)), trace.WithAttributes(attribute.String("decline_code", "insufficient_funds")))
	child.SetStatus(codes.Error, "declined")
	child.End(trace.WithTimestamp(at(35)))
	root.SetStatus(codes.Ok, "")
	root.End(trace.WithTimestamp(at(40)))

	id := root.SpanContext().TraceID()
	got, ok := buf.Trace(id)
	if !ok {
		t.Fatal("trace missing")
	}
	want := telemetry.TraceView{
		TraceID: id.String(),
		Spans: []telemetry.SpanView{
			{
				TraceID: id.String(), SpanID: root.SpanContext().SpanID().String(),
				Name: "POST /v1/checkout", Kind: "server", Service: "inventory",
				Start: at(0), End: at(40), DurationMS: 40,
				Status:     telemetry.StatusView{Code: "ok"},
				Attributes: map[string]any{"http.request.method": "POST"},
			},
			{
				TraceID: id.String(), SpanID: child.SpanContext().SpanID().String(),
				ParentSpanID: root.SpanContext().SpanID().String(),
				Name:         "charge payment", Kind: "client", Service: "inventory",
				Start: at(5), End: at(35), DurationMS: 30,
				Status: telemetry.StatusView{Code: "error", Message: "declined"},
				Events: []telemetry.EventView{{
					Name: "payment declined", Time: at(30),
					Attributes: map[string]any{"decline_code": "insufficient_funds"},
				}},
				Links: []telemetry.LinkView{{
					TraceID: other.SpanContext().TraceID().String(), SpanID: other.SpanContext().SpanID().String(),
				}},
			},
		},
		LinksTo: []telemetry.TraceLinkView{{
			SpanID: child.SpanContext().SpanID().String(), OtherTraceID: other.SpanContext().TraceID().String(),
			OtherSpanID: other.SpanContext().SpanID().String(), Buffered: true,
			OtherSpanName: "elsewhere", OtherRootName: "elsewhere",
			OtherStart: ptr(at(0)), OtherEnd: ptr(at(1)), OtherDurationMS: 1, OtherTraceEnd: ptr(at(1)),
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Trace (-want +got):\n%s", diff)
	}
	if _, ok := buf.Trace(trace.TraceID{1}); ok {
		t.Error("unknown trace id reported as present")
	}
}

func TestTraceBufferRecent(t *testing.T) {
	t.Parallel()
	buf := telemetry.NewTraceBuffer(100, 100)
	tr := bufferTracer(t, buf)

	span(t.Context(), tr, "GET /v1/catalog", 0, 10)
	ctx, _ := span(t.Context(), tr, "POST /v1/checkout", 100, 400)
	_, failed := tr.Start(ctx, "reserve inventory", trace.WithTimestamp(at(110)))
	failed.SetStatus(codes.Error, "insufficient stock")
	failed.End(trace.WithTimestamp(at(120)))
	span(t.Context(), tr, "POST /v1/earn", 200, 250)
	// A request arriving from a peer process: its root here has a remote parent.
	remote := trace.ContextWithRemoteSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	peerCtx, peerRoot := tr.Start(remote, "POST /v1/inventory/reserve", trace.WithTimestamp(at(300)))
	span(peerCtx, tr, "UPDATE stock", 301, 302)
	peerRoot.End(trace.WithTimestamp(at(310)))

	tests := []struct {
		name   string
		filter telemetry.RecentFilter
		want   []string
	}{
		{"all, newest first", telemetry.RecentFilter{}, []string{"POST /v1/inventory/reserve", "POST /v1/earn", "POST /v1/checkout", "GET /v1/catalog"}},
		{"root name prefix", telemetry.RecentFilter{SpanName: "POST /v1/"}, []string{"POST /v1/inventory/reserve", "POST /v1/earn", "POST /v1/checkout"}},
		// The slow-checkout query: a span below the root, by name and duration.
		{"inner span name", telemetry.RecentFilter{SpanName: "reserve inventory"}, []string{"POST /v1/checkout"}},
		{"inner span name prefix", telemetry.RecentFilter{SpanName: "UPDATE"}, []string{"POST /v1/inventory/reserve"}},
		{"inner span long enough", telemetry.RecentFilter{SpanName: "reserve inventory", MinDuration: 10 * time.Millisecond}, []string{"POST /v1/checkout"}},
		// The trace lasted 300 ms, but the named span only 10 ms.
		{"inner span too short", telemetry.RecentFilter{SpanName: "reserve inventory", MinDuration: 11 * time.Millisecond}, []string{}},
		{"no such span", telemetry.RecentFilter{SpanName: "checkout.process"}, []string{}},
		{"errors only", telemetry.RecentFilter{ErrorsOnly: true}, []string{"POST /v1/checkout"}},
		{"min duration", telemetry.RecentFilter{MinDuration: 50 * time.Millisecond}, []string{"POST /v1/earn", "POST /v1/checkout"}},
		{"limit", telemetry.RecentFilter{Limit: 2}, []string{"POST /v1/inventory/reserve", "POST /v1/earn"}},
		{"combined", telemetry.RecentFilter{SpanName: "POST", ErrorsOnly: true, MinDuration: time.Second}, []string{}},
		{"combined, inner span", telemetry.RecentFilter{SpanName: "reserve", ErrorsOnly: true, MinDuration: 5 * time.Millisecond}, []string{"POST /v1/checkout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, rootNames(buf.Recent(tc.filter))); diff != "" {
				t.Errorf("Recent (-want +got):\n%s", diff)
			}
		})
	}

	checkout := buf.Recent(telemetry.RecentFilter{ErrorsOnly: true})[0]
	if !checkout.Error || checkout.SpanCount != 2 || checkout.DurationMS != 300 {
		t.Errorf("checkout summary = %+v, want error, 2 spans, 300ms", checkout)
	}
}

func TestTraceBufferRecentLimitBounds(t *testing.T) {
	t.Parallel()
	buf := telemetry.NewTraceBuffer(1000, 1)
	tr := bufferTracer(t, buf)
	for i := range 600 {
		span(t.Context(), tr, "t", i, i+1)
	}
	for _, tc := range []struct{ limit, want int }{{0, 50}, {-1, 50}, {10, 10}, {10_000, 500}} {
		if got := len(buf.Recent(telemetry.RecentFilter{Limit: tc.limit})); got != tc.want {
			t.Errorf("Recent(Limit %d) returned %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestTraceBufferConcurrentUse is mostly for -race: writers and readers at once, bounds kept.
func TestTraceBufferConcurrentUse(t *testing.T) {
	t.Parallel()
	const maxTraces, maxSpans = 50, 4
	buf := telemetry.NewTraceBuffer(maxTraces, maxSpans)
	tr := bufferTracer(t, buf)

	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, s := range buf.Recent(telemetry.RecentFilter{Limit: 500}) {
					id, _ := trace.TraceIDFromHex(s.TraceID)
					buf.Trace(id)
				}
				if n := buf.Len(); n > maxTraces {
					t.Errorf("Len = %d, above the bound %d", n, maxTraces)
				}
			}
		})
	}
	for w := range 8 {
		writers.Go(func() {
			for i := range 100 {
				ctx, root := tr.Start(t.Context(), fmt.Sprintf("w%d-%d", w, i))
				for range 6 {
					_, s := tr.Start(ctx, "child")
					s.End()
				}
				root.End()
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()

	if n := buf.Len(); n != maxTraces {
		t.Errorf("Len = %d, want %d", n, maxTraces)
	}
	for _, s := range buf.Recent(telemetry.RecentFilter{Limit: 500}) {
		if s.SpanCount > maxSpans {
			t.Errorf("trace %s keeps %d spans, above the bound %d", s.TraceID, s.SpanCount, maxSpans)
		}
	}
}

// A webhook's processing span is its own trace with a span link to the checkout it
// completes: the checkout's view lists it under linked_from, the webhook's under
// links_to, each side with the other span's name and times; a link to a trace the
// buffer does not hold is listed without them, and eviction forgets the links.
func TestTraceBufferLinksBetweenTraces(t *testing.T) {
	t.Parallel()
	buf := telemetry.NewTraceBuffer(3, 10)
	tr := bufferTracer(t, buf)

	// The checkout: a server span and the payment span the webhook will point at.
	cctx, checkout := tr.Start(t.Context(), "POST /v1/checkout", trace.WithTimestamp(at(0)))
	_, payment := span(cctx, tr, "payment.charge", 10, 40)
	checkout.End(trace.WithTimestamp(at(50)))
	checkoutID := checkout.SpanContext().TraceID()

	// The webhook, seconds later, in a trace of its own (a new root), linked to the payment.
	unknown := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1}, SpanID: trace.SpanID{0xbb, 2}, TraceFlags: trace.FlagsSampled,
	})
	wctx, webhook := tr.Start(t.Context(), "POST /v1/webhooks/stripe", trace.WithNewRoot(), trace.WithTimestamp(at(3000)))
	_, process := span(wctx, tr, "payment.webhook.process", 3010, 3090,
		trace.WithLinks(trace.Link{SpanContext: payment.SpanContext()}, trace.Link{SpanContext: unknown}))
	webhook.End(trace.WithTimestamp(at(3100)))
	webhookID := webhook.SpanContext().TraceID()
	if webhookID == checkoutID {
		t.Fatal("the webhook span joined the checkout's trace")
	}

	cv, ok := buf.Trace(checkoutID)
	if !ok {
		t.Fatal("checkout trace missing")
	}
	ps, ws := at(3010), at(3090)
	wantFrom := []telemetry.TraceLinkView{{
		SpanID: payment.SpanContext().SpanID().String(), OtherTraceID: webhookID.String(),
		OtherSpanID: process.SpanContext().SpanID().String(), Buffered: true,
		OtherSpanName: "payment.webhook.process", OtherRootName: "POST /v1/webhooks/stripe",
		OtherStart: &ps, OtherEnd: &ws, OtherDurationMS: 80, OtherTraceEnd: ptr(at(3100)),
	}}
	if diff := cmp.Diff(wantFrom, cv.LinkedFrom); diff != "" {
		t.Errorf("checkout's linked_from (-want +got):\n%s", diff)
	}
	if len(cv.LinksTo) != 0 {
		t.Errorf("checkout links to %v, want nothing", cv.LinksTo)
	}

	wv, _ := buf.Trace(webhookID)
	payStart, payEnd := at(10), at(40)
	wantTo := []telemetry.TraceLinkView{
		{
			SpanID: process.SpanContext().SpanID().String(), OtherTraceID: checkoutID.String(),
			OtherSpanID: payment.SpanContext().SpanID().String(), Buffered: true,
			OtherSpanName: "payment.charge", OtherRootName: "POST /v1/checkout",
			OtherStart: &payStart, OtherEnd: &payEnd, OtherDurationMS: 30, OtherTraceEnd: ptr(at(50)),
		},
		{SpanID: process.SpanContext().SpanID().String(), OtherTraceID: unknown.TraceID().String(), OtherSpanID: unknown.SpanID().String()},
	}
	if diff := cmp.Diff(wantTo, wv.LinksTo); diff != "" {
		t.Errorf("webhook's links_to (-want +got):\n%s", diff)
	}
	if len(wv.LinkedFrom) != 0 {
		t.Errorf("webhook linked from %v, want nothing", wv.LinkedFrom)
	}

	// Two more traces evict the checkout: the webhook's link stays, now without the
	// checkout's details; then the webhook goes and the link leaves the index with it.
	span(t.Context(), tr, "other 1", 4000, 4001)
	span(t.Context(), tr, "other 2", 4002, 4003)
	if _, ok := buf.Trace(checkoutID); ok {
		t.Fatal("checkout still buffered")
	}
	wv, _ = buf.Trace(webhookID)
	if len(wv.LinksTo) != 2 || wv.LinksTo[0].Buffered || wv.LinksTo[1].Buffered {
		t.Errorf("links_to after the checkout's eviction = %+v, want two unbuffered links", wv.LinksTo)
	}
	_, later := span(t.Context(), tr, "later", 5000, 5001)
	if _, ok := buf.Trace(webhookID); ok {
		t.Fatal("webhook still buffered")
	}
	if lv, _ := buf.Trace(later.SpanContext().TraceID()); len(lv.LinkedFrom)+len(lv.LinksTo) != 0 {
		t.Errorf("an unlinked trace shows links: %+v", lv)
	}
}

func ptr[T any](v T) *T { return &v }
