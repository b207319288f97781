package otlptest_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func post(t *testing.T, url, contentType string, body []byte, gzipped bool) int {
	t.Helper()
	if gzipped {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverFlattensGzippedSpans(t *testing.T) {
	t.Parallel()
	rcv := otlptest.NewReceiver(t)
	raw, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "payment")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "payment"},
			Spans: []*tracepb.Span{{
				TraceId: bytes.Repeat([]byte{0xab}, 16), SpanId: bytes.Repeat([]byte{0xcd}, 8),
				Name: "charge", Kind: tracepb.Span_SPAN_KIND_CLIENT,
				StartTimeUnixNano: 1_000_000_000, EndTimeUnixNano: 2_000_000_000,
				Attributes: []*commonpb.KeyValue{
					str("decline_code", "expired_card"),
					{Key: "attempt", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 2}}},
				},
				Events: []*tracepb.Span_Event{{Name: "declined"}},
				Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "declined"},
			}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if code := post(t, rcv.Endpoint()+"/v1/traces", "application/json", []byte("{}"), false); code != http.StatusUnsupportedMediaType {
		t.Errorf("JSON export: status %d, want 415", code)
	}
	if code := post(t, rcv.Endpoint()+"/v1/traces", "application/x-protobuf", raw, true); code != http.StatusOK {
		t.Fatalf("protobuf export: status %d", code)
	}

	got := rcv.WaitForSpans(t, otlptest.HasSpan("charge"), time.Second)
	want := []otlptest.Span{{
		Name: "charge", TraceID: "abababababababababababababababab", SpanID: "cdcdcdcdcdcdcdcd",
		Kind: "client", Start: time.Unix(1, 0), End: time.Unix(2, 0),
		Attributes: map[string]any{"decline_code": "expired_card", "attempt": int64(2)},
		Events:     []otlptest.Event{{Name: "declined", Attributes: map[string]any{}}},
		Status:     otlptest.Status{Code: "error", Message: "declined"},
		Resource:   map[string]any{"service.name": "payment"},
		Scope:      "payment",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if n := rcv.Requests(); n != 1 {
		t.Errorf("Requests = %d, want 1 (rejected requests do not count)", n)
	}
}
