package stripe_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// testKey is a made-up key; tests assert it never surfaces.
const testKey = "sk_test_godwitSecretValue123"

// sent is one request as it left the SDK.
type sent struct {
	Method, Path   string
	IdempotencyKey string
	Auth           string
	Form           url.Values
	Query          url.Values
}

// recorder is a RoundTripper that notes every request and passes it on.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []sent
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	s := sent{Method: req.Method, Path: req.URL.Path, IdempotencyKey: req.Header.Get("Idempotency-Key"),
		Auth: req.Header.Get("Authorization"), Query: req.URL.Query()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		s.Form, _ = url.ParseQuery(string(b))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) sent() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.reqs...)
}

// tracing gives a test an in-memory tracer provider and a parent span standing
// in for the payment service's payment.gateway_call span.
type tracing struct {
	tp  *sdktrace.TracerProvider
	rec *tracetest.SpanRecorder
}

func newTracing(t *testing.T) *tracing {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &tracing{tp: tp, rec: rec}
}

// call runs fn inside a gateway_call span and returns that span's attributes.
func (tr *tracing) call(ctx context.Context, fn func(ctx context.Context)) map[attribute.Key]attribute.Value {
	ctx, span := tr.tp.Tracer("test").Start(ctx, "payment.gateway_call", trace.WithSpanKind(trace.SpanKindClient))
	fn(ctx)
	span.End()
	out := map[attribute.Key]attribute.Value{}
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
		for _, kv := range ro.Attributes() {
			out[kv.Key] = kv.Value
		}
	}
	return out
}

// allAttributes is every attribute value of every ended span, for leak checks.
func (tr *tracing) allAttributes() []string {
	var out []string
	for _, s := range tr.rec.Ended() {
		out = append(out, s.Name())
		for _, kv := range s.Attributes() {
			out = append(out, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events() {
			for _, kv := range ev.Attributes {
				out = append(out, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
	}
	return out
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
