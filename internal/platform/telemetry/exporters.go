package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutlog"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// We build exporters ourselves rather than through autoexport because autoexport reads the process
// environment, and Config.Getenv must be the single source of truth. None of the constructors
// below dials: connections are made lazily on the first export.

var errUnsupportedExporter = errors.New("unsupported exporter")

// buildAll creates one exporter per configured name. If any fails, those already built are shut
// down so a failed Setup leaves nothing running.
func buildAll[E interface{ Shutdown(context.Context) error }](ctx context.Context, signal string, names []string,
	build func(name string) (E, error),
) ([]E, error) {
	var out []E
	for _, name := range names {
		e, err := build(name)
		if err != nil {
			for _, built := range out {
				err = errors.Join(err, built.Shutdown(ctx))
			}
			return nil, fmt.Errorf("%s exporter %q: %w", signal, name, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func spanExporters(ctx context.Context, getenv func(string) string, console io.Writer) ([]sdktrace.SpanExporter, error) {
	return buildAll(ctx, signalTraces, exporterNames(getenv, signalTraces), func(name string) (sdktrace.SpanExporter, error) {
		switch name {
		case "console":
			return stdouttrace.New(stdouttrace.WithWriter(console))
		case "otlp":
			t, err := otlpTargetFor(getenv, signalTraces)
			if err != nil {
				return nil, err
			}
			if t.grpc {
				return otlptracegrpc.New(ctx, otlpOptions(t, otlptracegrpc.WithEndpointURL, otlptracegrpc.WithEndpoint,
					otlptracegrpc.WithInsecure, otlptracegrpc.WithHeaders, otlptracegrpc.WithTimeout)...)
			}
			return otlptracehttp.New(ctx, otlpOptions(t, otlptracehttp.WithEndpointURL, otlptracehttp.WithEndpoint,
				otlptracehttp.WithInsecure, otlptracehttp.WithHeaders, otlptracehttp.WithTimeout)...)
		}
		return nil, errUnsupportedExporter
	})
}

func metricExporters(ctx context.Context, getenv func(string) string, console io.Writer) ([]sdkmetric.Exporter, error) {
	// "prometheus" names the pull endpoint, which MetricsHandler always serves: nothing to push.
	names := slices.DeleteFunc(exporterNames(getenv, signalMetrics), func(n string) bool { return n == "prometheus" })
	return buildAll(ctx, signalMetrics, names, func(name string) (sdkmetric.Exporter, error) {
		switch name {
		case "console":
			return stdoutmetric.New(stdoutmetric.WithWriter(console))
		case "otlp":
			t, err := otlpTargetFor(getenv, signalMetrics)
			if err != nil {
				return nil, err
			}
			if t.grpc {
				return otlpmetricgrpc.New(ctx, otlpOptions(t, otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithEndpoint,
					otlpmetricgrpc.WithInsecure, otlpmetricgrpc.WithHeaders, otlpmetricgrpc.WithTimeout)...)
			}
			return otlpmetrichttp.New(ctx, otlpOptions(t, otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithEndpoint,
				otlpmetrichttp.WithInsecure, otlpmetrichttp.WithHeaders, otlpmetrichttp.WithTimeout)...)
		}
		return nil, errUnsupportedExporter
	})
}

func logExporters(ctx context.Context, getenv func(string) string, console io.Writer) ([]sdklog.Exporter, error) {
	return buildAll(ctx, signalLogs, exporterNames(getenv, signalLogs), func(name string) (sdklog.Exporter, error) {
		switch name {
		case "console":
			return stdoutlog.New(stdoutlog.WithWriter(console))
		case "otlp":
			t, err := otlpTargetFor(getenv, signalLogs)
			if err != nil {
				return nil, err
			}
			if t.grpc {
				return otlploggrpc.New(ctx, otlpOptions(t, otlploggrpc.WithEndpointURL, otlploggrpc.WithEndpoint,
					otlploggrpc.WithInsecure, otlploggrpc.WithHeaders, otlploggrpc.WithTimeout)...)
			}
			return otlploghttp.New(ctx, otlpOptions(t, otlploghttp.WithEndpointURL, otlploghttp.WithEndpoint,
				otlploghttp.WithInsecure, otlploghttp.WithHeaders, otlploghttp.WithTimeout)...)
		}
		return nil, errUnsupportedExporter
	})
}
