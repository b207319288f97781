package defaults

import (
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

func TestFillSetsNilFields(t *testing.T) {
	var (
		now    func() time.Time
		logger *slog.Logger
		tp     trace.TracerProvider
		mp     metric.MeterProvider
	)
	Fill(Fields{Now: &now, Logger: &logger, Tracer: &tp, Meter: &mp})
	if now == nil || logger == nil || tp == nil || mp == nil {
		t.Fatalf("a field stayed nil: now=%v logger=%v tracer=%v meter=%v", now != nil, logger != nil, tp, mp)
	}
	if logger.Enabled(t.Context(), slog.LevelError) {
		t.Error("default logger is enabled; want one that discards")
	}
	if _, ok := tp.(tracenoop.TracerProvider); !ok {
		t.Errorf("tracer provider = %T, want the no-op", tp)
	}
	if _, ok := mp.(metricnoop.MeterProvider); !ok {
		t.Errorf("meter provider = %T, want the no-op", mp)
	}
}

func TestFillKeepsSetFieldsAndSkipsAbsentOnes(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return fixed }
	logger := slog.Default()
	Fill(Fields{Now: &now, Logger: &logger}) // no Tracer or Meter: must not panic
	if !now().Equal(fixed) {
		t.Error("Fill replaced a set clock")
	}
	if logger != slog.Default() {
		t.Error("Fill replaced a set logger")
	}
}
