package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// TestTraceShowsLinkedTraces records two traces in a real trace buffer, a checkout and,
// three seconds later, a webhook's processing in a trace of its own with a span link to
// the checkout's payment span (as the Stripe webhook records it), serves them as the
// admin API does, and checks that `godwit trace` prints the webhook beside the checkout
// on one timeline, and the checkout as what the webhook continues.
func TestTraceShowsLinkedTraces(t *testing.T) {
	buf := telemetry.NewTraceBuffer(10, 100)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(buf))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tp.Tracer("test")
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(ms int) trace.SpanEventOption {
		return trace.WithTimestamp(t0.Add(time.Duration(ms) * time.Millisecond))
	}

	ctx, checkout := tr.Start(context.Background(), "POST /v1/checkout", at(0))
	_, charge := tr.Start(ctx, "payment.process", at(10))
	charge.End(at(90))
	checkout.End(at(100))
	wctx, hook := tr.Start(context.Background(), "POST /v1/webhooks/stripe", trace.WithNewRoot(), at(3000))
	_, process := tr.Start(wctx, "payment.webhook.process", at(3010), trace.WithLinks(trace.Link{SpanContext: charge.SpanContext()}))
	process.End(at(3060))
	hook.End(at(3100))
	checkoutID, hookID := checkout.SpanContext().TraceID(), hook.SpanContext().TraceID()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := trace.TraceIDFromHex(strings.TrimPrefix(r.URL.Path, "/v1/admin/traces/"))
		v, ok := buf.Trace(id)
		if err != nil || !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}))
	defer srv.Close()

	out, err := runTraceCmd(t, "--target", srv.URL, "--token", "admin-token", "--width", "40", checkoutID.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	_, section, ok := strings.Cut(out, "continued in")
	if !ok {
		t.Fatalf("no 'continued in' section:\n%s", out)
	}
	here, linked := lineOf(t, section, "this trace"), lineOf(t, section, "↳ payment.webhook.process")
	for _, want := range []string{"trace " + hookID.String(), "(POST /v1/webhooks/stripe)", "→ payment.process", "+3.01s", "50ms"} {
		if !strings.Contains(linked, want) {
			t.Errorf("the linked row %q lacks %q", linked, want)
		}
	}
	// One timeline for both, from the checkout's start to the linked span's end (3,060 ms)
	// over 40 characters: the checkout (100 ms) at the start, the webhook's span (50 ms
	// from 3,010 ms) in the last character.
	if from, n := barOf(t, here); from != 0 || n != 2 {
		t.Errorf("this trace's bar starts at %d, %d long; want 0, 2", from, n)
	}
	if from, n := barOf(t, linked); from != 39 || n != 1 {
		t.Errorf("the webhook's bar starts at %d, %d long; want 39, 1", from, n)
	}
	// The main waterfall keeps its own scale: the checkout fills it.
	if from, n := barOf(t, lineOf(t, out, "POST /v1/checkout")); from != 0 || n != 40 {
		t.Errorf("the checkout's own bar starts at %d, %d long; want 0, 40", from, n)
	}

	out, err = runTraceCmd(t, "--target", srv.URL, "--token", "admin-token", hookID.String())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "continued in") {
		t.Errorf("the webhook's trace claims to be continued:\n%s", out)
	}
	want := "payment.webhook.process → payment.process in trace " + checkoutID.String() + " (POST /v1/checkout)"
	if _, section, _ := strings.Cut(out, "continues"); !strings.Contains(section, want) {
		t.Errorf("the webhook's trace does not say it continues the checkout (%q):\n%s", want, out)
	}
}

// With --jaeger, a span's reference to a span of another trace (how Jaeger shows an OTel
// span link) is printed under "continues"; a reference within the trace stays the parent.
func TestTraceJaegerLinks(t *testing.T) {
	const answer = `{"data":[{"traceID":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","spans":[
{"traceID":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","spanID":"1111111111111111","operationName":"POST /v1/webhooks/stripe","references":[],"startTime":1795300920733353,"duration":5000,"tags":[],"logs":[],"processID":"p1"},
{"traceID":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","spanID":"2222222222222222","operationName":"payment.webhook.process","references":[
 {"refType":"CHILD_OF","traceID":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","spanID":"1111111111111111"},
 {"refType":"FOLLOWS_FROM","traceID":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","spanID":"3333333333333333"}],"startTime":1795300920733400,"duration":4000,"tags":[],"logs":[],"processID":"p1"}],
"processes":{"p1":{"serviceName":"godwit"}}}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	out, err := runTraceCmd(t, "--jaeger", srv.URL, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	if err != nil {
		t.Fatal(err)
	}
	if indentOf(lineOf(t, out, "payment.webhook.process")) != 2 {
		t.Errorf("the linked span lost its parent:\n%s", out)
	}
	want := "payment.webhook.process → span 3333333333333333 in trace aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if _, section, _ := strings.Cut(out, "continues"); !strings.Contains(section, want) || strings.Contains(section, "not in the buffer") {
		t.Errorf("want %q under continues:\n%s", want, out)
	}
}
