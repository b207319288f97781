package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// env turns a map into a Config.Getenv.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// setup calls telemetry.Setup and shuts it down when the test ends.
func setup(t *testing.T, cfg telemetry.Config, logOut io.Writer) *telemetry.Telemetry {
	t.Helper()
	if cfg.Getenv == nil {
		cfg.Getenv = env(nil) // never let a test see the developer's own OTEL_* variables
	}
	tel, err := telemetry.Setup(t.Context(), cfg, logOut)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	return tel
}

// countAccepts listens on addr and counts connections until the test ends. It reports false if
// the address is taken.
func countAccepts(t *testing.T, addr string, n *atomic.Int64) bool {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return true
}

// TestSetupWithoutConfigurationStaysOffline is not parallel: it owns the default OTLP ports, and
// the OTel error handler is process-global, so another test's export failure must not land in
// this test's log.
func TestSetupWithoutConfigurationStaysOffline(t *testing.T) {
	var accepted atomic.Int64
	portsOwned := countAccepts(t, "127.0.0.1:4318", &accepted) && countAccepts(t, "127.0.0.1:4317", &accepted)
	countAccepts(t, "[::1]:4318", &accepted) // best effort: "localhost" may resolve to either
	countAccepts(t, "[::1]:4317", &accepted)

	var logs bytes.Buffer
	tel, err := telemetry.Setup(t.Context(), telemetry.Config{Getenv: env(nil)}, &logs)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctx, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "offline")
	counter, err := tel.MeterProvider.Meter("test").Int64Counter("offline.things")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)
	span.End()

	sctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}

	if _, ok := tel.Traces.Trace(span.SpanContext().TraceID()); !ok {
		t.Error("span missing from the in-memory trace buffer")
	}
	if logs.Len() != 0 {
		t.Errorf("nothing configured, yet telemetry logged:\n%s", logs.String())
	}
	if !portsOwned {
		t.Skip("127.0.0.1:4317 or :4318 is in use; cannot check that no connection is attempted")
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections to the default OTLP ports, want none", n)
	}
}

func TestSetupExportsOverOTLP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cfg          telemetry.Config
		extraEnv     map[string]string
		wantResource map[string]any
	}{
		{
			name: "config defaults",
			cfg:  telemetry.Config{ServiceVersion: "1.2.3"},
			wantResource: map[string]any{
				"service.name":                "godwit",
				"service.namespace":           "godwit",
				"service.version":             "1.2.3",
				"deployment.environment.name": "development",
				"telemetry.sdk.language":      "go",
			},
		},
		{
			name: "environment wins",
			cfg:  telemetry.Config{ServiceName: "from-config", ServiceVersion: "1.2.3", Environment: "from-config"},
			extraEnv: map[string]string{
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,service.name=ignored,team=loyalty%20core",
				"OTEL_SERVICE_NAME":        "checkout",
			},
			wantResource: map[string]any{
				"service.name":                "checkout",
				"service.namespace":           "godwit",
				"service.version":             "1.2.3",
				"deployment.environment.name": "staging",
				"team":                        "loyalty core",
				"telemetry.sdk.language":      "go",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := otlptest.NewReceiver(t)
			tc.cfg.Getenv = rcv.Env(tc.extraEnv)
			var logs bytes.Buffer
			tel, err := telemetry.Setup(t.Context(), tc.cfg, &logs)
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}

			tracer := tel.TracerProvider.Tracer("test")
			ctx, parent := tracer.Start(t.Context(), "checkout", trace.WithSpanKind(trace.SpanKindServer))
			_, child := tracer.Start(ctx, "reserve inventory", trace.WithAttributes(attribute.Int("items", 3)))
			child.AddEvent("reserved")
			child.End()
			counter, err := tel.MeterProvider.Meter("test").Int64Counter("checkout.completed")
			if err != nil {
				t.Fatal(err)
			}
			counter.Add(ctx, 2)
			tel.Logger.InfoContext(ctx, "checkout done")
			parent.End()

			sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := tel.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			spans := rcv.WaitForSpans(t, otlptest.HasSpan("checkout", "reserve inventory"), 5*time.Second)
			byName := map[string]otlptest.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			root, kid := byName["checkout"], byName["reserve inventory"]
			if kid.ParentSpanID != root.SpanID || kid.TraceID != root.TraceID || root.ParentSpanID != "" {
				t.Errorf("tree broken: root %s/%s parent %q, child %s parent %s",
					root.TraceID, root.SpanID, root.ParentSpanID, kid.TraceID, kid.ParentSpanID)
			}
			if root.Kind != "server" || kid.Attributes["items"] != int64(3) || len(kid.Events) != 1 {
				t.Errorf("span details lost: root kind %q, child attrs %v, events %v", root.Kind, kid.Attributes, kid.Events)
			}
			gotRes := map[string]any{}
			for k := range tc.wantResource {
				gotRes[k] = root.Resource[k]
			}
			if diff := cmp.Diff(tc.wantResource, gotRes); diff != "" {
				t.Errorf("resource (-want +got):\n%s", diff)
			}

			if names := rcv.MetricNames(); !strings.Contains(strings.Join(names, " "), "checkout.completed") {
				t.Errorf("metric names = %v, want checkout.completed", names)
			}
			logged := rcv.WaitForLogs(t, func(l []otlptest.LogRecord) bool { return len(l) > 0 }, 5*time.Second)
			if logged[0].Body != "checkout done" || logged[0].TraceID != root.TraceID {
				t.Errorf("OTLP log = %+v, want body %q with trace %s", logged[0], "checkout done", root.TraceID)
			}
			if !strings.Contains(logs.String(), `"msg":"checkout done"`) {
				t.Errorf("log not written locally too:\n%s", logs.String())
			}
		})
	}
}

// A signal-specific endpoint enables only that signal, and is used as is.
func TestSetupSignalSpecificEndpoint(t *testing.T) {
	t.Parallel()
	rcv := otlptest.NewReceiver(t)
	tel, err := telemetry.Setup(t.Context(), telemetry.Config{Getenv: env(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": rcv.Endpoint() + "/v1/traces",
	})}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "only traces")
	span.End()
	counter, _ := tel.MeterProvider.Meter("test").Int64Counter("not.exported")
	counter.Add(t.Context(), 1)
	tel.Logger.Info("not exported")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rcv.WaitForSpans(t, otlptest.HasSpan("only traces"), 5*time.Second)
	if m, l := rcv.MetricNames(), rcv.Logs(); len(m) != 0 || len(l) != 0 {
		t.Errorf("only traces were configured, got metrics %v and %d logs", m, len(l))
	}
}

func TestSamplerFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sampler, arg string
		wantRecorded bool
	}{
		{"", "", true},
		{"always_on", "", true},
		{"always_off", "", false},
		{"traceidratio", "0", false},
		{"traceidratio", "1", true},
		{"parentbased_always_off", "", false},
		{"parentbased_traceidratio", "0", false},
	}
	for _, tc := range tests {
		t.Run(tc.sampler+"/"+tc.arg, func(t *testing.T) {
			t.Parallel()
			tel := setup(t, telemetry.Config{Getenv: env(map[string]string{
				"OTEL_TRACES_SAMPLER": tc.sampler, "OTEL_TRACES_SAMPLER_ARG": tc.arg,
			})}, io.Discard)
			_, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "sampled?")
			span.End()
			if got := span.SpanContext().IsSampled(); got != tc.wantRecorded {
				t.Errorf("sampled = %v, want %v", got, tc.wantRecorded)
			}
			if got := tel.Traces.Len() == 1; got != tc.wantRecorded {
				t.Errorf("in trace buffer = %v, want %v", got, tc.wantRecorded)
			}
		})
	}
}

func TestSetupRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cfg telemetry.Config
		env map[string]string
	}{
		"unknown sampler":      {env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}},
		"ratio out of range":   {env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}},
		"unknown exporter":     {env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}},
		"unsupported protocol": {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}},
		"endpoint not a URL":   {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"}},
		"malformed resource":   {env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "team"}},
		"unknown log format":   {cfg: telemetry.Config{LogFormat: "xml"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Getenv = env(tc.env)
			tel, err := telemetry.Setup(t.Context(), tc.cfg, io.Discard)
			if err == nil {
				_ = tel.Shutdown(t.Context())
				t.Fatal("Setup succeeded, want an error")
			}
		})
	}
}

func TestMetricsHandlerServesPrometheusText(t *testing.T) {
	t.Parallel()
	tel := setup(t, telemetry.Config{}, io.Discard)
	counter, err := tel.MeterProvider.Meter("test").Int64Counter("godwit.orders")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(t.Context(), 7, metric.WithAttributes(attribute.String("currency", "EUR")))

	rec := httptest.NewRecorder()
	tel.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, body)
	}
	for _, want := range []string{
		"# TYPE godwit_orders_total counter",
		`godwit_orders_total{currency="EUR",otel_scope_name="test"`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics output lacks %q:\n%s", want, body)
		}
	}
}

func TestLoggerAddsTraceAndSpanIDs(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tel := setup(t, telemetry.Config{}, &out)
	ctx, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "with ids")
	tel.Logger.InfoContext(ctx, "inside", "order", 7)
	span.End()
	tel.Logger.InfoContext(t.Context(), "outside")

	records := map[string]map[string]any{} // by message
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("output is not JSON lines: %v\n%s", err, out.String())
		}
		records[rec["msg"].(string)] = rec
	}
	inside, outside := records["inside"], records["outside"]
	if inside == nil || outside == nil {
		t.Fatalf("records missing from output:\n%s", out.String())
	}
	sc := span.SpanContext()
	want := map[string]any{"level": "INFO", "order": 7.0, "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()}
	for k, v := range want {
		if inside[k] != v {
			t.Errorf("inside[%q] = %v, want %v", k, inside[k], v)
		}
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("record without a span got a trace_id: %v", outside)
	}
}

func TestLoggerTextFormatAndLevel(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tel := setup(t, telemetry.Config{LogFormat: "text", LogLevel: slog.LevelWarn}, &out)
	ctx, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "text")
	defer span.End()
	tel.Logger.InfoContext(ctx, "below level")
	tel.Logger.WarnContext(ctx, "kept")
	got := out.String()
	if strings.Contains(got, "below level") {
		t.Errorf("info record logged at warn level:\n%s", got)
	}
	if want := "trace_id=" + span.SpanContext().TraceID().String(); !strings.Contains(got, want) || !strings.Contains(got, "msg=kept") {
		t.Errorf("text output lacks %q or the message:\n%s", want, got)
	}
}

// TestShutdownWithAbsentCollector is not parallel and comes last: its export failures are
// reported through the process-global OTel error handler, which must not reach other tests' logs.
func TestShutdownWithAbsentCollector(t *testing.T) {
	tests := []struct {
		name      string
		protocol  string
		collector func(t *testing.T) (endpoint string, hangUp func())
	}{
		{"nothing listens", "http/protobuf", closedPort},
		{"nothing listens, grpc", "grpc", closedPort},
		{"collector never answers", "http/protobuf", silentCollector},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint, hangUp := tc.collector(t)
			logs := &testlog.Buffer{}
			tel, err := telemetry.Setup(t.Context(), telemetry.Config{Getenv: env(map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
				"OTEL_EXPORTER_OTLP_PROTOCOL": tc.protocol,
				"OTEL_EXPORTER_OTLP_TIMEOUT":  "300",
			})}, logs)
			if err != nil {
				t.Fatalf("Setup must not fail because a collector is absent: %v", err)
			}
			ctx, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "lost")
			counter, _ := tel.MeterProvider.Meter("test").Int64Counter("lost.things")
			counter.Add(ctx, 1)
			tel.Logger.InfoContext(ctx, "lost too")
			span.End()

			sctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tel.Shutdown(sctx) }()
			select {
			case <-done: // an error is expected and fine; hanging is not
			case <-time.After(30 * time.Second):
				t.Fatal("Shutdown hung with an unreachable collector")
			}
			if _, ok := tel.Traces.Trace(span.SpanContext().TraceID()); !ok {
				t.Error("the in-memory trace view must work even when export fails")
			}

			// The span export outlives Shutdown's deadline in the background and ends in a WARN
			// through the global error handler. Wait for it, so it cannot land in a later test's log.
			hangUp()
			waitUntil(t, 10*time.Second, func() bool {
				return strings.Contains(logs.String(), `"level":"WARN","msg":"opentelemetry sdk error","err":"traces export`)
			})
		})
	}
}

// closedPort returns the URL of a local port nobody listens on.
func closedPort(t *testing.T) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "http://" + ln.Addr().String(), func() {}
}

// silentCollector accepts connections and never answers, like a collector behind a black hole.
func silentCollector(t *testing.T) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	hangUp := sync.OnceFunc(func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	t.Cleanup(hangUp)
	return "http://" + ln.Addr().String(), hangUp
}

// waitUntil polls cond, for the rare background effect that offers nothing to wait on.
func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
	}
}
