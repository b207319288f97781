package telemetry

import (
	"fmt"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The SDK reads OTEL_* variables from the process environment by itself. We read the handful that
// decide *what* is exported and *where* through Config.Getenv instead, so that tests can inject
// them without os.Setenv and run in parallel. Tuning knobs (batch sizes, span limits, TLS files,
// compression) are still read by the SDK from the process environment.

// newResource describes this process. Config supplies defaults; OTEL_RESOURCE_ATTRIBUTES overrides
// them and OTEL_SERVICE_NAME overrides both, as the specification orders it.
func newResource(cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceNamespace(cfg.Namespace),
		semconv.DeploymentEnvironmentNameKey.String(cfg.Environment),
		semconv.TelemetrySDKName("opentelemetry"),
		semconv.TelemetrySDKLanguageGo,
		semconv.TelemetrySDKVersion(sdk.Version()),
	}
	if v := cfg.ServiceVersion; v != "" {
		attrs = append(attrs, semconv.ServiceVersion(v))
	}
	pairs, err := parseKeyValues(cfg.Getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	for _, p := range pairs {
		attrs = append(attrs, attribute.String(p.key, p.value))
	}
	if name := strings.TrimSpace(cfg.Getenv("OTEL_SERVICE_NAME")); name != "" {
		attrs = append(attrs, semconv.ServiceName(name))
	}
	// Duplicate keys resolve to the last value, which gives the precedence above.
	return resource.NewWithAttributes(semconv.SchemaURL, attrs...), nil
}

// buildVersion is the main module's version, so a binary built from a tag reports it without
// every caller having to pass ServiceVersion.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// samplerFromEnv honours OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG. Unknown values are an
// error rather than a silent fallback: a typo should stop the process at start-up, not quietly
// change how much is traced.
func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio in [0, 1]", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: unsupported sampler %q", name)
}

// Signal names as they appear in OTEL_<SIGNAL>_EXPORTER and in OTLP/HTTP paths.
const (
	signalTraces  = "traces"
	signalMetrics = "metrics"
	signalLogs    = "logs"
)

// exporterNames lists the push exporters wanted for a signal. An explicit OTEL_<SIGNAL>_EXPORTER
// decides; otherwise an OTLP endpoint implies "otlp"; otherwise nothing is exported, so a process
// with no configuration never opens a connection.
func exporterNames(getenv func(string) string, signal string) []string {
	upper := strings.ToUpper(signal)
	if v := strings.TrimSpace(getenv("OTEL_" + upper + "_EXPORTER")); v != "" {
		var names []string
		for n := range strings.SplitSeq(v, ",") {
			n = strings.ToLower(strings.TrimSpace(n))
			if n != "" && n != "none" {
				names = append(names, n)
			}
		}
		return names
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+upper+"_ENDPOINT") != "" {
		return []string{"otlp"}
	}
	return nil
}

// otlpTarget is where and how one signal is sent over OTLP.
type otlpTarget struct {
	grpc     bool
	endpoint string // a URL with scheme, a bare host:port, or "" for the exporter's default
	insecure bool   // only consulted for a bare host:port; a URL's scheme decides otherwise
	headers  map[string]string
	timeout  time.Duration // 0 keeps the exporter's default
}

func (t otlpTarget) isURL() bool { return strings.Contains(t.endpoint, "://") }

// otlpTargetFor resolves the OTLP settings of one signal: the signal-specific variable wins over
// the generic one. A generic HTTP endpoint is a base URL and gets the signal path appended; a
// signal-specific one is used as is.
func otlpTargetFor(getenv func(string) string, signal string) (otlpTarget, error) {
	upper := strings.ToUpper(signal)
	pick := func(name string) (string, string) {
		specific := "OTEL_EXPORTER_OTLP_" + upper + "_" + name
		if v := strings.TrimSpace(getenv(specific)); v != "" {
			return v, specific
		}
		generic := "OTEL_EXPORTER_OTLP_" + name
		return strings.TrimSpace(getenv(generic)), generic
	}
	var t otlpTarget

	switch proto, name := pick("PROTOCOL"); proto {
	case "", "http/protobuf":
	case "grpc":
		t.grpc = true
	default:
		return t, fmt.Errorf("%s: unsupported protocol %q (want http/protobuf or grpc)", name, proto)
	}

	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + upper + "_ENDPOINT")); v != "" {
		t.endpoint = v
	} else if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); v != "" {
		t.endpoint = v
		if !t.grpc && t.isURL() {
			t.endpoint = strings.TrimRight(v, "/") + "/v1/" + signal
		}
	}
	if t.isURL() {
		u, err := url.Parse(t.endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return t, fmt.Errorf("OTLP %s endpoint %q is not an http(s) URL", signal, t.endpoint)
		}
	}

	if v, name := pick("INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return t, fmt.Errorf("%s: %w", name, err)
		}
		t.insecure = b
	}
	if v, name := pick("HEADERS"); v != "" {
		pairs, err := parseKeyValues(v)
		if err != nil {
			return t, fmt.Errorf("%s: %w", name, err)
		}
		t.headers = make(map[string]string, len(pairs))
		for _, p := range pairs {
			t.headers[p.key] = p.value
		}
	}
	if v, name := pick("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return t, fmt.Errorf("%s: %q is not a positive number of milliseconds", name, v)
		}
		t.timeout = time.Duration(ms) * time.Millisecond
	}
	return t, nil
}

// otlpOptions turns a target into options for any of the six OTLP exporters; they share the same
// option shapes but not the same types, hence the constructor arguments.
func otlpOptions[O any](t otlpTarget,
	endpointURL, endpoint func(string) O,
	insecure func() O,
	headers func(map[string]string) O,
	timeout func(time.Duration) O,
) []O {
	var opts []O
	switch {
	case t.isURL():
		opts = append(opts, endpointURL(t.endpoint))
	case t.endpoint != "":
		opts = append(opts, endpoint(t.endpoint))
	}
	if t.insecure && !t.isURL() {
		opts = append(opts, insecure())
	}
	if t.headers != nil {
		opts = append(opts, headers(t.headers))
	}
	if t.timeout > 0 {
		opts = append(opts, timeout(t.timeout))
	}
	return opts
}

type keyValue struct{ key, value string }

// parseKeyValues reads the "k1=v1,k2=v2" lists used by OTEL_RESOURCE_ATTRIBUTES and the OTLP
// header variables; values are percent-decoded as the specification requires.
func parseKeyValues(s string) ([]keyValue, error) {
	var out []keyValue
	for item := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed entry %q: want key=value", item)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", k, err)
		}
		out = append(out, keyValue{key: k, value: dv})
	}
	return out, nil
}
