// Package otlptest runs an in-process OTLP/HTTP receiver, so tests can assert on the spans,
// metrics and logs a component exports without a collector. Only the protobuf encoding is
// accepted, which is what the Go OTLP/HTTP exporters send.
//
//	rcv := otlptest.NewReceiver(t)
//	tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: rcv.Env(nil)}, io.Discard)
//	… exercise the code, then tel.Shutdown(ctx) (or wait) …
//	spans := rcv.WaitForSpans(t, otlptest.HasSpan("checkout"), 5*time.Second)
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds one export request; far above what an exporter batches by default.
const maxBody = 64 << 20

// Receiver collects what OTLP/HTTP exporters send to it. All methods are safe for concurrent use.
type Receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	spans    []Span
	metrics  []Metric
	logs     []LogRecord
	changed  chan struct{} // closed and replaced on every accepted request, to wake waiters
}

// Span is an exported span flattened with its resource and scope. Ids are lowercase hex; an
// absent parent is "".
type Span struct {
	Name         string
	TraceID      string
	SpanID       string
	ParentSpanID string
	Kind         string // "server", "client", "internal", "producer", "consumer", "unspecified"
	Start, End   time.Time
	Attributes   map[string]any
	Events       []Event
	Links        []Link
	Status       Status
	Resource     map[string]any
	Scope        string
}

// Event is a span event.
type Event struct {
	Name       string
	Attributes map[string]any
}

// Link points at another span.
type Link struct {
	TraceID, SpanID string
}

// Status is a span status; Code is "unset", "ok" or "error".
type Status struct {
	Code, Message string
}

// Metric is one exported metric with its data points. Several exports of the same instrument
// appear as several Metrics, in arrival order.
type Metric struct {
	Name, Description, Unit string
	Resource                map[string]any
	Scope                   string
	Points                  []Point
}

// Point is a data point: Value holds a sum or gauge value, or a histogram's sum, and Count a
// histogram's count.
type Point struct {
	Attributes map[string]any
	Value      float64
	Count      uint64
}

// LogRecord is an exported log record.
type LogRecord struct {
	Time           time.Time
	SeverityText   string
	SeverityNumber int32
	Body           any
	TraceID        string
	SpanID         string
	Attributes     map[string]any
	Resource       map[string]any
	Scope          string
}

// NewReceiver starts a receiver on 127.0.0.1 and stops it when the test ends. Shut down whatever
// exports to it before that (a t.Cleanup registered later runs earlier).
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var in coltracepb.ExportTraceServiceRequest
		if r.decode(w, req, &in) {
			spans := flattenSpans(&in)
			r.record(func() { r.spans = append(r.spans, spans...) })
			reply(w, &coltracepb.ExportTraceServiceResponse{})
		}
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		var in colmetricspb.ExportMetricsServiceRequest
		if r.decode(w, req, &in) {
			metrics := flattenMetrics(&in)
			r.record(func() { r.metrics = append(r.metrics, metrics...) })
			reply(w, &colmetricspb.ExportMetricsServiceResponse{})
		}
	})
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, req *http.Request) {
		var in collogspb.ExportLogsServiceRequest
		if r.decode(w, req, &in) {
			logs := flattenLogs(&in)
			r.record(func() { r.logs = append(r.logs, logs...) })
			reply(w, &collogspb.ExportLogsServiceResponse{})
		}
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// Endpoint is the receiver's base URL, the value for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) Endpoint() string { return r.srv.URL }

// Env returns a Getenv function pointing every OTLP signal at the receiver over http/protobuf.
// extra adds or overrides variables (for example OTEL_TRACES_SAMPLER); other names read as "".
func (r *Receiver) Env(extra map[string]string) func(string) string {
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": r.Endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
	}
	maps.Copy(env, extra)
	return func(k string) string { return env[k] }
}

// Requests counts the export requests accepted so far, across all signals.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Spans returns every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// SpansNamed returns the received spans with the given name.
func (r *Receiver) SpansNamed(name string) []Span {
	return slices.DeleteFunc(r.Spans(), func(s Span) bool { return s.Name != name })
}

// Metrics returns every metric received so far, in arrival order.
func (r *Receiver) Metrics() []Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.metrics)
}

// MetricNames returns the distinct names of the metrics received so far, sorted.
func (r *Receiver) MetricNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.metrics))
	for _, m := range r.metrics {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Logs returns every log record received so far, in arrival order.
func (r *Receiver) Logs() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs)
}

// WaitForSpans waits until cond holds for the spans received so far and returns them, failing the
// test after timeout. It wakes on each arrival instead of polling on a timer.
func (r *Receiver) WaitForSpans(t testing.TB, cond func([]Span) bool, timeout time.Duration) []Span {
	t.Helper()
	return waitFor(t, r, r.Spans, cond, timeout, func(spans []Span) string {
		names := make([]string, len(spans))
		for i, s := range spans {
			names[i] = s.Name
		}
		return fmt.Sprintf("%d spans received: %v", len(spans), names)
	})
}

// WaitForMetrics is WaitForSpans for metrics.
func (r *Receiver) WaitForMetrics(t testing.TB, cond func([]Metric) bool, timeout time.Duration) []Metric {
	t.Helper()
	return waitFor(t, r, r.Metrics, cond, timeout, func([]Metric) string {
		return fmt.Sprintf("metrics received: %v", r.MetricNames())
	})
}

// WaitForLogs is WaitForSpans for log records.
func (r *Receiver) WaitForLogs(t testing.TB, cond func([]LogRecord) bool, timeout time.Duration) []LogRecord {
	t.Helper()
	return waitFor(t, r, r.Logs, cond, timeout, func(logs []LogRecord) string {
		return fmt.Sprintf("%d log records received", len(logs))
	})
}

// HasSpan is a WaitForSpans condition: every name appears among the spans.
func HasSpan(names ...string) func([]Span) bool {
	return func(spans []Span) bool {
		for _, n := range names {
			if !slices.ContainsFunc(spans, func(s Span) bool { return s.Name == n }) {
				return false
			}
		}
		return true
	}
}

func waitFor[T any](t testing.TB, r *Receiver, get func() []T, cond func([]T) bool, timeout time.Duration, describe func([]T) string) []T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		// Read after taking the channel, so an arrival in between still wakes us.
		got := get()
		if cond(got) {
			return got
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("otlptest: condition not met within %v; %s", timeout, describe(get()))
			return nil
		}
	}
}

func (r *Receiver) record(add func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	add()
	close(r.changed)
	r.changed = make(chan struct{})
}

// decode reads a protobuf export request, writing the error response itself when it cannot.
func (r *Receiver) decode(w http.ResponseWriter, req *http.Request, msg proto.Message) bool {
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-protobuf") {
		http.Error(w, "otlptest: only application/x-protobuf is supported, got "+ct, http.StatusUnsupportedMediaType)
		return false
	}
	body := io.Reader(http.MaxBytesReader(w, req.Body, maxBody))
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		defer gz.Close()
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err == nil {
		err = proto.Unmarshal(raw, msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, msg proto.Message) {
	raw, err := proto.Marshal(msg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(raw)
}

func flattenSpans(in *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range in.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Name:         s.GetName(),
					TraceID:      hexID(s.GetTraceId()),
					SpanID:       hexID(s.GetSpanId()),
					ParentSpanID: hexID(s.GetParentSpanId()),
					Kind:         strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_")),
					Start:        unixNano(s.GetStartTimeUnixNano()),
					End:          unixNano(s.GetEndTimeUnixNano()),
					Attributes:   attrs(s.GetAttributes()),
					Status: Status{
						Code:    strings.ToLower(strings.TrimPrefix(s.GetStatus().GetCode().String(), "STATUS_CODE_")),
						Message: s.GetStatus().GetMessage(),
					},
					Resource: res,
					Scope:    ss.GetScope().GetName(),
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, Event{Name: e.GetName(), Attributes: attrs(e.GetAttributes())})
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hexID(l.GetTraceId()), SpanID: hexID(l.GetSpanId())})
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func flattenMetrics(in *colmetricspb.ExportMetricsServiceRequest) []Metric {
	var out []Metric
	for _, rm := range in.GetResourceMetrics() {
		res := attrs(rm.GetResource().GetAttributes())
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				out = append(out, Metric{
					Name:        m.GetName(),
					Description: m.GetDescription(),
					Unit:        m.GetUnit(),
					Resource:    res,
					Scope:       sm.GetScope().GetName(),
					Points:      points(m),
				})
			}
		}
	}
	return out
}

func points(m *metricspb.Metric) []Point {
	var numbers []*metricspb.NumberDataPoint
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Sum:
		numbers = d.Sum.GetDataPoints()
	case *metricspb.Metric_Gauge:
		numbers = d.Gauge.GetDataPoints()
	case *metricspb.Metric_Histogram:
		var out []Point
		for _, p := range d.Histogram.GetDataPoints() {
			out = append(out, Point{Attributes: attrs(p.GetAttributes()), Value: p.GetSum(), Count: p.GetCount()})
		}
		return out
	case *metricspb.Metric_ExponentialHistogram:
		var out []Point
		for _, p := range d.ExponentialHistogram.GetDataPoints() {
			out = append(out, Point{Attributes: attrs(p.GetAttributes()), Value: p.GetSum(), Count: p.GetCount()})
		}
		return out
	}
	out := make([]Point, 0, len(numbers))
	for _, p := range numbers {
		v := p.GetAsDouble()
		if _, ok := p.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
			v = float64(p.GetAsInt())
		}
		out = append(out, Point{Attributes: attrs(p.GetAttributes()), Value: v})
	}
	return out
}

func flattenLogs(in *collogspb.ExportLogsServiceRequest) []LogRecord {
	var out []LogRecord
	for _, rl := range in.GetResourceLogs() {
		res := attrs(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			for _, l := range sl.GetLogRecords() {
				out = append(out, LogRecord{
					Time:           unixNano(l.GetTimeUnixNano()),
					SeverityText:   l.GetSeverityText(),
					SeverityNumber: int32(l.GetSeverityNumber()),
					Body:           value(l.GetBody()),
					TraceID:        hexID(l.GetTraceId()),
					SpanID:         hexID(l.GetSpanId()),
					Attributes:     attrs(l.GetAttributes()),
					Resource:       res,
					Scope:          sl.GetScope().GetName(),
				})
			}
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

// value converts an OTLP value to plain Go: string, bool, int64, float64, []byte, []any or
// map[string]any, so tests can compare with literals.
func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrs(x.KvlistValue.GetValues())
	}
	return nil
}

// hexID renders a trace or span id; an empty or all-zero id (no parent) becomes "".
func hexID(b []byte) string {
	if len(b) == 0 || !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
		return ""
	}
	return hex.EncodeToString(b)
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}
