package telemetry_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

func TestNewLogHandler(t *testing.T) {
	t.Parallel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 2}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)

	tests := []struct {
		name string
		log  func(*slog.Logger)
		want map[string]any
	}{
		{
			name: "span in context",
			log:  func(l *slog.Logger) { l.InfoContext(ctx, "hi") },
			want: map[string]any{"msg": "hi", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()},
		},
		{
			name: "derived logger keeps the ids",
			log:  func(l *slog.Logger) { l.With("member", "m1").InfoContext(ctx, "hi") },
			want: map[string]any{"msg": "hi", "member": "m1", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()},
		},
		{
			name: "no span, no ids",
			log:  func(l *slog.Logger) { l.InfoContext(t.Context(), "hi") },
			want: map[string]any{"msg": "hi"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			base := slog.NewJSONHandler(&out, &slog.HandlerOptions{
				// Drop time and level so the whole record can be compared.
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
						return slog.Attr{}
					}
					return a
				},
			})
			tc.log(slog.New(telemetry.NewLogHandler(base)))
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v: %s", err, out.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}
