package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// DefaultTelemetryFlush bounds how long a process waits at exit for its
// telemetry to be flushed, so an absent collector cannot hold up exit.
const DefaultTelemetryFlush = time.Second

// TelemetryConfig is how a process sets up telemetry: the same path for
// `serve` and the batch commands, driven by the standard OTEL_* variables.
type TelemetryConfig struct {
	// ServiceName is service.name; default the name of the services run
	// (see ServiceName). OTEL_SERVICE_NAME overrides it.
	ServiceName    string
	ServiceVersion string
	LogFormat      string // "json" (default) or "text"
	LogLevel       slog.Level
	// LogOutput receives logs and console exporter output; default stderr.
	LogOutput io.Writer
	// Getenv reads the OTEL_* variables; default os.Getenv.
	Getenv func(string) string
	// FlushTimeout bounds the flush at exit; default DefaultTelemetryFlush.
	FlushTimeout time.Duration
}

// setup builds the SDK and returns it with the function that flushes and
// stops it (bounded by FlushTimeout).
func (c TelemetryConfig) setup(ctx context.Context) (*telemetry.Telemetry, func(), error) {
	if c.LogOutput == nil {
		c.LogOutput = os.Stderr
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = DefaultTelemetryFlush
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: c.ServiceName, ServiceVersion: c.ServiceVersion,
		LogFormat: c.LogFormat, LogLevel: c.LogLevel, Getenv: c.Getenv,
	}, c.LogOutput)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: %w", err)
	}
	// The flush outlives ctx: a command ended by a signal still exports
	// what it recorded.
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.FlushTimeout)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}
	return tel, stop, nil
}
