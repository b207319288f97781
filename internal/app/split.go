package app

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// The services one process can run. Every process runs all of them unless
// Config.Services names a subset (split mode); the others are peers, reached
// over HTTP.
const (
	ServiceCheckout  = "checkout"
	ServiceCart      = "cart"
	ServiceCatalog   = "catalog"
	ServiceInventory = "inventory"
	ServicePayment   = "payment"
	ServiceOrder     = "order"
	ServiceLoyalty   = "loyalty"
	ServiceNotify    = "notify"
)

// AllServices lists every service in a fixed order (used for names and help).
var AllServices = []string{ServiceCheckout, ServiceCart, ServiceCatalog, ServiceInventory, ServicePayment, ServiceOrder, ServiceLoyalty, ServiceNotify}

// dependsOn names the peers each service calls: the checkout saga calls
// everything but notify (the order service queues confirmations in its own
// transaction); the cart reads prices from the catalog.
var dependsOn = map[string][]string{
	ServiceCheckout: {ServiceCart, ServiceCatalog, ServiceInventory, ServicePayment, ServiceOrder, ServiceLoyalty},
	ServiceCart:     {ServiceCatalog},
}

// DefaultPeerTimeout bounds one attempt of a call to a peer service.
const DefaultPeerTimeout = 10 * time.Second

// ParseServices reads a --services value: a comma-separated subset of
// AllServices, or "" / "all" for every service. The result is in
// AllServices order without duplicates.
func ParseServices(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllServices), nil
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if name == "all" {
			return slices.Clone(AllServices), nil
		}
		if !slices.Contains(AllServices, name) {
			return nil, fmt.Errorf("unknown service %q (want a comma-separated subset of %s)", name, strings.Join(AllServices, ", "))
		}
		seen[name] = true
	}
	var out []string
	for _, name := range AllServices {
		if seen[name] {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no service named (want a comma-separated subset of %s)", strings.Join(AllServices, ", "))
	}
	return out, nil
}

// ServiceName is the service.name a process running services reports:
// "godwit" for all of them, "godwit-<service>" for one, and
// "godwit-<a>+<b>+..." (in AllServices order) for another subset.
func ServiceName(services []string) string {
	if len(services) == 0 || len(services) == len(AllServices) {
		return "godwit"
	}
	ordered := make([]string, 0, len(services))
	for _, name := range AllServices {
		if slices.Contains(services, name) {
			ordered = append(ordered, name)
		}
	}
	return "godwit-" + strings.Join(ordered, "+")
}

// ParsePeer reads one --peer value, name=url.
func ParsePeer(s string) (name, base string, err error) {
	name, base, ok := strings.Cut(strings.TrimSpace(s), "=")
	name = strings.ToLower(strings.TrimSpace(name))
	if !ok || name == "" || base == "" {
		return "", "", fmt.Errorf("peer %q: want name=url, e.g. payment=http://payment:8080", s)
	}
	if !slices.Contains(AllServices, name) {
		return "", "", fmt.Errorf("peer %q: unknown service %q", s, name)
	}
	if err := checkPeerURL(base); err != nil {
		return "", "", fmt.Errorf("peer %s: %w", name, err)
	}
	return name, strings.TrimRight(base, "/"), nil
}

func checkPeerURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) base URL", base)
	}
	return nil
}

// topology is which services this process runs and where the others live.
type topology struct {
	run   map[string]bool
	peers map[string]string
}

func newTopology(services []string, peers map[string]string) (topology, error) {
	t := topology{run: map[string]bool{}, peers: map[string]string{}}
	if len(services) == 0 {
		services = AllServices
	}
	for _, s := range services {
		if !slices.Contains(AllServices, s) {
			return t, fmt.Errorf("app: unknown service %q", s)
		}
		t.run[s] = true
	}
	var missing []string
	for _, s := range services {
		for _, dep := range dependsOn[s] {
			if t.run[dep] {
				continue
			}
			base, ok := peers[dep]
			if !ok {
				if !slices.Contains(missing, dep) {
					missing = append(missing, dep)
				}
				continue
			}
			if err := checkPeerURL(base); err != nil {
				return t, fmt.Errorf("app: peer %s: %w", dep, err)
			}
			t.peers[dep] = strings.TrimRight(base, "/")
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		hints := make([]string, len(missing))
		for i, m := range missing {
			hints[i] = fmt.Sprintf("--peer %s=URL (or GODWIT_PEER_%s)", m, strings.ToUpper(m))
		}
		return t, fmt.Errorf("app: running %s needs the %s service(s), which this process does not run: set %s",
			strings.Join(services, ","), strings.Join(missing, ", "), strings.Join(hints, ", "))
	}
	return t, nil
}

func (t topology) all() bool { return len(t.run) == len(AllServices) }

// names lists the services this process runs, in AllServices order.
func (t topology) names() []string {
	var out []string
	for _, name := range AllServices {
		if t.run[name] {
			out = append(out, name)
		}
	}
	return out
}

// peerHTTPClient is the HTTP client of every peer call: per-attempt timeout,
// and a transport that makes a CLIENT span per call and injects W3C trace
// context and baggage, so a checkout across processes is one trace.
func peerHTTPClient(tel *telemetry.Telemetry, timeout time.Duration) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64
	return &http.Client{
		Timeout: timeout,
		Transport: otelhttp.NewTransport(httpx.ExpectedAnswers(base),
			otelhttp.WithTracerProvider(tel.TracerProvider),
			otelhttp.WithMeterProvider(tel.MeterProvider),
			otelhttp.WithPropagators(tel.Propagator),
			otelhttp.WithSpanNameFormatter(httpx.ClientSpanName),
		),
	}
}
