// Package defaults supplies the defaults every service constructor applies to
// the dependencies its Config may leave nil: the clock is time.Now, the logger
// discards, and the tracer and meter providers are OpenTelemetry's no-ops. A
// Config keeps its own fields (tests and internal/app build them as composite
// literals); its constructor names the fields it has in one Fill call, so the
// defaults are written once, here, and cannot drift between services.
package defaults

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Fields points at the Config fields a constructor wants defaulted. A nil
// pointer means the Config has no such field (or keeps nil on purpose, as a
// Config does whose nil meter provider means "register no metrics").
type Fields struct {
	Now    *func() time.Time
	Logger **slog.Logger
	Tracer *trace.TracerProvider
	Meter  *metric.MeterProvider
}

// Fill sets each field f points at that is still nil to its default and
// leaves the others as they are.
func Fill(f Fields) {
	if f.Now != nil && *f.Now == nil {
		*f.Now = time.Now
	}
	if f.Logger != nil && *f.Logger == nil {
		*f.Logger = slog.New(slog.DiscardHandler)
	}
	if f.Tracer != nil && *f.Tracer == nil {
		*f.Tracer = tracenoop.NewTracerProvider()
	}
	if f.Meter != nil && *f.Meter == nil {
		*f.Meter = metricnoop.NewMeterProvider()
	}
}
