package deploytest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
)

// collector is a running collector built by scripts/otelcol-local.sh.
type collector struct {
	*process
	otlpHTTP    string // base URL of its OTLP/HTTP receiver
	metricsBase string // its own Prometheus endpoint
}

// startCollector runs the collector binary named by GODWIT_OTELCOL with deploy/otelcol/config.yaml,
// everything bound to loopback, its exporters pointed at recv, and the variables in extra.
func startCollector(t *testing.T, recv *otlptest.Receiver, extra map[string]string) *collector {
	t.Helper()
	bin := os.Getenv("GODWIT_OTELCOL")
	if bin == "" {
		t.Skip("GODWIT_OTELCOL is not set: build a collector with `export GODWIT_OTELCOL=$(scripts/otelcol-local.sh)` to run the collector round trip")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("GODWIT_OTELCOL=%s is not an executable: %v", bin, err)
	}
	config, err := filepath.Abs(filepath.Join(root, "deploy", "otelcol", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	grpcPort, httpPort, metricsPort := freePort(t), freePort(t), freePort(t)
	env := map[string]string{
		"OTELCOL_BIND":             "127.0.0.1",
		"OTELCOL_GRPC_PORT":        strconv.Itoa(grpcPort),
		"OTELCOL_HTTP_PORT":        strconv.Itoa(httpPort),
		"OTELCOL_METRICS_PORT":     strconv.Itoa(metricsPort),
		"OTELCOL_TRACES_ENDPOINT":  recv.Endpoint(),
		"OTELCOL_METRICS_ENDPOINT": recv.Endpoint(),
	}
	for k, v := range extra {
		env[k] = v
	}
	vars := os.Environ()
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}

	validate := exec.Command(bin, "validate", "--config", config)
	validate.Env = vars
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("%s validate --config %s: %v\n%s", bin, config, err, out)
	}

	cmd := exec.Command(bin, "--config", config)
	cmd.Env = vars
	c := &collector{
		process:     startProcess(t, cmd),
		otlpHTTP:    fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		metricsBase: fmt.Sprintf("http://127.0.0.1:%d", metricsPort),
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Post(c.otlpHTTP+"/v1/traces", "application/json", strings.NewReader("{}"))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-c.done:
			t.Fatalf("the collector exited: %v\n%s", err, c.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector did not accept OTLP/HTTP within 20s:\n%s", c.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// TestCollectorRoundTrip sends a split-mode Godwit's telemetry through the real collector with
// the deploy configuration and checks what the backend receives.
func TestCollectorRoundTrip(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	const (
		slowThresholdMS = 1500
		slowCheckoutMS  = 2000
	)
	col := startCollector(t, recv, map[string]string{
		"OTELCOL_DECISION_WAIT":    "4s",
		"OTELCOL_SLOW_CHECKOUT_MS": strconv.Itoa(slowThresholdMS),
		// Keep nothing by chance: what arrives was kept by the error or slow-checkout policy.
		"OTELCOL_SAMPLE_PERCENT": "0",
		"OTELCOL_BATCH_TIMEOUT":  "200ms",
	})

	secret := strings.Repeat("c0", 32)
	otel := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + col.otlpHTTP,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_METRICS_EXPORTER=otlp,prometheus",
		"OTEL_LOGS_EXPORTER=otlp",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_METRIC_EXPORT_INTERVAL=500",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=deploytest",
	}
	// Split mode: the payment and order services in processes of their own (order on the
	// gateway's database), everything else in the gateway. With order apart, the saga asks it
	// for the checkout's order before creating one and gets the expected 404: a good
	// checkout must still have no span in error, or the errors policy keeps every checkout.
	payment := startGodwit(t, otel, "--services=payment", "--data-dir", t.TempDir(), "--secret", secret)
	shared := t.TempDir()
	order := startGodwit(t, otel, "--services=order", "--data-dir", shared, "--secret", secret)
	gateway := startGodwit(t, otel,
		"--services=checkout,cart,catalog,inventory,loyalty,notify",
		"--peer", "payment="+payment.base, "--peer", "order="+order.base, "--data-dir", shared, "--secret", secret)

	tr := driveTraffic(t, gateway.base, payment.base, secret, slowCheckoutMS)
	kept := append(slices.Clone(tr.failed), tr.slow...)

	// Wait for every kept checkout's checkout.process span; the slow checkout is the last
	// request made, so once it is in, every earlier decision has been made too.
	spans := recv.WaitForSpans(t, func(spans []otlptest.Span) bool {
		for _, id := range kept {
			if !slices.ContainsFunc(spans, func(s otlptest.Span) bool { return s.TraceID == id && s.Name == "checkout.process" }) {
				return false
			}
		}
		return true
	}, 60*time.Second)
	// Give late spans and a wrongly kept trace time to show up.
	time.Sleep(2 * time.Second)
	spans = recv.Spans()

	byTrace := map[string][]otlptest.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}

	t.Run("tail sampling", func(t *testing.T) {
		for _, id := range tr.failed {
			if len(byTrace[id]) == 0 {
				t.Errorf("failed checkout %s was not kept", id)
			}
		}
		for _, id := range tr.slow {
			if len(byTrace[id]) == 0 {
				t.Errorf("slow checkout %s was not kept", id)
			}
		}
		for _, id := range tr.fast {
			if n := len(byTrace[id]); n > 0 {
				t.Errorf("fast successful trace %s was kept (%d spans) with a 0%% baseline", id, n)
			}
		}
		for id := range byTrace {
			if !slices.Contains(kept, id) && !slices.Contains(tr.fast, id) {
				// Background work (outbox, jobs) has no error here and is dropped too.
				for _, s := range byTrace[id] {
					if s.Status.Code == "error" {
						goto next
					}
				}
				t.Errorf("trace %s (%s) was kept with no error and no slow checkout", id, byTrace[id][0].Name)
			next:
			}
		}
	})

	t.Run("resource", func(t *testing.T) {
		services := map[string]bool{}
		for _, s := range spans {
			if s.Resource["platform"] != "ecommerce" {
				t.Fatalf("span %s lacks the collector's platform=ecommerce: %v", s.Name, s.Resource)
			}
			if s.Resource["deployment.environment.name"] != "deploytest" || s.Resource["service.namespace"] != "godwit" {
				t.Fatalf("span %s resource = %v", s.Name, s.Resource)
			}
			services[fmt.Sprint(s.Resource["service.name"])] = true
		}
		want := map[string]bool{"godwit-payment": true, "godwit-order": true, "godwit-checkout+cart+catalog+inventory+loyalty+notify": true}
		for name := range want {
			if !services[name] {
				t.Errorf("no span from service %s; services seen: %v", name, services)
			}
		}
		for name := range services {
			if !want[name] {
				t.Errorf("unexpected service.name %q", name)
			}
		}
	})

	t.Run("declined checkout trace", func(t *testing.T) {
		for _, id := range tr.failed {
			ts := byTrace[id]
			checkTree(t, id, ts)
			cp := one(t, ts, "checkout.process")
			if cp.Status.Code != "error" {
				t.Errorf("checkout.process status = %+v", cp.Status)
			}
			wantAttrs(t, cp, map[string]any{"checkout.failure_step": "processing_payment", "checkout.step": "processing_payment", "checkout.currency": "USD"},
				"cart.id", "checkout.id", "checkout.total", "checkout.item_count", "user.id", "inventory.reservation_id")
			if !slices.ContainsFunc(cp.Events, func(e otlptest.Event) bool { return e.Name == "exception" }) {
				t.Errorf("checkout.process has no exception event")
			}
			gw := one(t, ts, "payment.gateway_call")
			wantAttrs(t, gw, map[string]any{"payment.decline_code": "generic_decline", "peer.service": "payment-simulator", "payment.operation": "charge"}, "payment.gateway_latency_ms")
			if gw.Resource["service.name"] != "godwit-payment" {
				t.Errorf("payment.gateway_call came from %v, want the payment process", gw.Resource["service.name"])
			}
			if !hasAncestor(ts, gw, "checkout.process") {
				t.Errorf("payment.gateway_call in the payment process is not under checkout.process in the gateway")
			}
			for _, name := range []string{"cart.validate", "cart.fetch_contents", "cart.verify_prices", "inventory.reserve_batch", "inventory.reserve_item", "payment.process"} {
				if s := one(t, ts, name); !hasAncestor(ts, s, "checkout.process") {
					t.Errorf("%s is not under checkout.process", name)
				}
			}
			if one(t, ts, "cart.fetch_contents").ParentSpanID != one(t, ts, "cart.validate").SpanID {
				t.Errorf("cart.fetch_contents is not a child of cart.validate")
			}
		}
	})

	t.Run("slow checkout trace", func(t *testing.T) {
		for _, id := range tr.slow {
			ts := byTrace[id]
			checkTree(t, id, ts)
			cp := one(t, ts, "checkout.process")
			if d := cp.End.Sub(cp.Start); d < slowCheckoutMS*time.Millisecond {
				t.Errorf("slow checkout.process took %s", d)
			}
			wantAttrs(t, cp, map[string]any{"checkout.step": "complete", "user.id": "guest"}, "order.id", "checkout.total")
			// A good checkout has no span in error on any side, the order lookup's expected
			// 404 included (its client span in the gateway, its server span in order).
			lookups := 0
			for _, s := range ts {
				if s.Status.Code == "error" {
					t.Errorf("good checkout %s: span %s in %v is in error: %+v", id, s.Name, s.Resource["service.name"], s.Status)
				}
				if s.Name == "GET /internal/v1/orders/by-checkout/{checkout_id}" {
					lookups++
				}
			}
			if lookups != 2 {
				t.Errorf("good checkout %s: %d spans of the order lookup, want its client and server spans", id, lookups)
			}
			gw := one(t, ts, "payment.gateway_call")
			if ms, _ := gw.Attributes["payment.gateway_latency_ms"].(int64); ms < slowCheckoutMS {
				t.Errorf("payment.gateway_latency_ms = %v, want at least %d", gw.Attributes["payment.gateway_latency_ms"], slowCheckoutMS)
			}
			one(t, ts, "order.create")
		}
	})

	t.Run("nothing sensitive", func(t *testing.T) {
		for _, s := range spans {
			where := fmt.Sprintf("span %s (%s)", s.Name, s.Resource["service.name"])
			scan(t, where, s.Attributes, tr.secrets)
			scan(t, where+" resource", s.Resource, tr.secrets)
			for _, e := range s.Events {
				scan(t, where+" event "+e.Name, e.Attributes, tr.secrets)
			}
		}
		for _, m := range recv.Metrics() {
			for _, p := range m.Points {
				scan(t, "metric "+m.Name, p.Attributes, tr.secrets)
			}
		}
	})

	t.Run("metrics pipeline", func(t *testing.T) {
		ms := recv.WaitForMetrics(t, func(ms []otlptest.Metric) bool {
			return slices.ContainsFunc(ms, func(m otlptest.Metric) bool { return m.Name == "checkout.completed" })
		}, 20*time.Second)
		for _, m := range ms {
			if m.Resource["platform"] != "ecommerce" {
				t.Fatalf("metric %s lacks platform=ecommerce: %v", m.Name, m.Resource)
			}
		}
	})

	t.Run("collector self-metrics", func(t *testing.T) {
		code, body := get(t, col.metricsBase+"/metrics")
		if code != 200 {
			t.Fatalf("collector /metrics = %d", code)
		}
		// The alert CollectorRefusingSpans queries this family.
		if !strings.Contains(body, "otelcol_receiver_refused_spans") {
			t.Errorf("collector metrics lack otelcol_receiver_refused_spans:\n%.3000s", body)
		}
	})
}

// checkTree checks that a trace is whole: one root (the checkout's HTTP server span) and every
// other span's parent present, across processes.
func checkTree(t *testing.T, id string, spans []otlptest.Span) {
	t.Helper()
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	var roots []string
	for _, s := range spans {
		switch {
		case s.ParentSpanID == "":
			roots = append(roots, s.Name)
		case !ids[s.ParentSpanID]:
			t.Errorf("trace %s: the parent of %s (%s) did not arrive", id, s.Name, s.Resource["service.name"])
		}
	}
	if len(roots) != 1 || roots[0] != "POST /v1/checkout" {
		t.Errorf("trace %s: roots %v, want the one POST /v1/checkout server span", id, roots)
	}
}

func one(t *testing.T, spans []otlptest.Span, name string) otlptest.Span {
	t.Helper()
	var found []otlptest.Span
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s spans in the trace, want 1", len(found), name)
	}
	return found[0]
}

func hasAncestor(spans []otlptest.Span, s otlptest.Span, name string) bool {
	byID := map[string]otlptest.Span{}
	for _, x := range spans {
		byID[x.SpanID] = x
	}
	for i := 0; i < len(spans) && s.ParentSpanID != ""; i++ {
		p, ok := byID[s.ParentSpanID]
		if !ok {
			return false
		}
		if p.Name == name {
			return true
		}
		s = p
	}
	return false
}

func wantAttrs(t *testing.T, s otlptest.Span, equal map[string]any, present ...string) {
	t.Helper()
	for k, v := range equal {
		if s.Attributes[k] != v {
			t.Errorf("%s: %s = %v, want %v", s.Name, k, s.Attributes[k], v)
		}
	}
	for _, k := range present {
		if _, ok := s.Attributes[k]; !ok {
			t.Errorf("%s lacks %s (has %v)", s.Name, k, s.Attributes)
		}
	}
}

var (
	emailRE  = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	bearerRE = regexp.MustCompile(`(?i)bearer\s+\S|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`)
	// A run of 13-19 digits, optionally grouped by spaces or dashes, not inside a longer word.
	cardRE = regexp.MustCompile(`(?:^|[^0-9A-Za-z])(\d(?:[ -]?\d){12,18})(?:$|[^0-9A-Za-z])`)
)

// luhn reports whether digits (separators ignored) pass the card-number checksum.
func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// scan fails the test if an attribute value looks like an email, a bearer token or a card number,
// or contains one of the secrets the traffic used.
func scan(t *testing.T, where string, attrs map[string]any, secrets []string) {
	t.Helper()
	for k, v := range attrs {
		var vals []string
		switch v := v.(type) {
		case string:
			vals = []string{v}
		case []any:
			for _, x := range v {
				vals = append(vals, fmt.Sprint(x))
			}
		default:
			vals = []string{fmt.Sprint(v)}
		}
		for _, s := range vals {
			if emailRE.MatchString(s) {
				t.Errorf("%s: %s holds an email address: %q", where, k, s)
			}
			if bearerRE.MatchString(s) {
				t.Errorf("%s: %s holds a bearer token: %.80q", where, k, s)
			}
			for _, m := range cardRE.FindAllStringSubmatch(s, -1) {
				if luhn(m[1]) {
					t.Errorf("%s: %s holds a card-like number: %q", where, k, m[1])
				}
			}
			for _, secret := range secrets {
				if strings.Contains(s, secret) {
					t.Errorf("%s: %s contains %.12q…", where, k, secret)
				}
			}
		}
	}
}
