package deploytest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/config"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       map[string]any `yaml:"build"`
	Command     any            `yaml:"command"`
	Environment map[string]any `yaml:"environment"`
	Ports       []string       `yaml:"ports"`
	Volumes     []string       `yaml:"volumes"`
	DependsOn   any            `yaml:"depends_on"`
}

func (s composeService) command() []string {
	switch c := s.Command.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		out := make([]string, len(c))
		for i, v := range c {
			out[i] = fmt.Sprint(v)
		}
		return out
	}
	return nil
}

func (s composeService) dependsOn() []string {
	switch d := s.DependsOn.(type) {
	case []any:
		out := make([]string, len(d))
		for i, v := range d {
			out[i] = fmt.Sprint(v)
		}
		return out
	case map[string]any:
		out := make([]string, 0, len(d))
		for k := range d {
			out = append(out, k)
		}
		return out
	}
	return nil
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("compose.yaml defines no services")
	}
	return c
}

// helpFlags runs `godwit <cmd> -h` and returns its flag names and their environment names.
func helpFlags(t *testing.T, cmd string) (flags, envs map[string]bool) {
	t.Helper()
	out, err := exec.Command(binary, cmd, "-h").Output()
	if err != nil {
		t.Fatalf("godwit %s -h: %v", cmd, err)
	}
	flags, envs = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\[(GODWIT_[A-Z0-9_]+)\]`).FindAllStringSubmatch(string(out), -1) {
		envs[m[1]] = true
	}
	if len(flags) < 3 || !flags["db"] {
		t.Fatalf("godwit %s -h lists too few flags:\n%s", cmd, out)
	}
	return flags, envs
}

// parsedFlags splits a command line's flags into name -> values (repeatable flags keep all).
// Values are taken from --name=value or the next argument.
func parsedFlags(t *testing.T, service string, args []string, known map[string]bool) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: unexpected positional argument %q in %v", service, a, args)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			t.Errorf("%s: flag --%s is not one of the binary's flags", service, name)
			continue
		}
		if !hasVal {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				val = args[i+1]
				i++
			} else {
				val = "true" // a boolean flag
			}
		}
		out[name] = append(out[name], val)
	}
	return out
}

func portOf(t *testing.T, hostport string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("address %q: %v", hostport, err)
	}
	return port
}

// containerPort is the container side of a compose port mapping: "127.0.0.1:8081:8080" -> 8080.
func containerPort(mapping string) string {
	parts := strings.Split(mapping, ":")
	p, _, _ := strings.Cut(parts[len(parts)-1], "/")
	return p
}

// godwitService is a compose service that runs `godwit serve`, with what it was told.
type godwitService struct {
	name     string
	services []string
	port     string            // from --addr
	metrics  string            // the port /metrics is served on: --metrics-addr's, else port
	peers    map[string]string // service -> base URL
	maxConns int               // --db-max-conns
}

// godwitServices checks every godwit container's command and environment against the binary and
// returns the `serve` ones.
func godwitServices(t *testing.T, c composeFile) map[string]godwitService {
	t.Helper()
	serveFlags, serveEnvs := helpFlags(t, "serve")
	migrateFlags, migrateEnvs := helpFlags(t, "migrate")
	// Read by serve from the environment only (secrets), per docs/operations.md.
	envOnly := map[string]bool{"GODWIT_STRIPE_SECRET_KEY": true, "GODWIT_SMTP_PASSWORD": true}

	out := map[string]godwitService{}
	for name, s := range c.Services {
		if s.Build == nil && !strings.HasPrefix(s.Image, "godwit") {
			continue
		}
		args := s.command()
		if len(args) == 0 {
			t.Errorf("%s: a godwit container needs an explicit command", name)
			continue
		}
		var flags, envs map[string]bool
		switch args[0] {
		case "serve":
			flags, envs = serveFlags, serveEnvs
		case "migrate":
			flags, envs = migrateFlags, migrateEnvs
		default:
			t.Errorf("%s: unexpected godwit command %q", name, args[0])
			continue
		}
		got := parsedFlags(t, name, args[1:], flags)
		peers := map[string]string{}
		for k, v := range s.Environment {
			if !strings.HasPrefix(k, "GODWIT_") {
				continue
			}
			if p, ok := strings.CutPrefix(k, "GODWIT_PEER_"); ok && args[0] == "serve" {
				peers[strings.ToLower(p)] = fmt.Sprint(v)
				continue
			}
			if !envs[k] && !(args[0] == "serve" && envOnly[k]) {
				t.Errorf("%s: environment %s is not read by godwit %s", name, k, args[0])
			}
		}
		if args[0] != "serve" {
			continue
		}
		g := godwitService{name: name, peers: peers}
		addr := ":8080" // serve's default
		if v, ok := s.Environment["GODWIT_ADDR"]; ok {
			addr = fmt.Sprint(v)
		}
		if v := got["addr"]; len(v) > 0 {
			addr = v[len(v)-1]
		}
		g.maxConns = app.DefaultDBMaxConns
		if v := lastSetting(s.Environment, got, "db-max-conns"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < app.MinDBMaxConns {
				t.Errorf("%s: --db-max-conns %q: want a number of at least %d", name, v, app.MinDBMaxConns)
			}
			g.maxConns = n
		}
		g.port = portOf(t, addr)
		g.metrics = g.port
		if v := lastSetting(s.Environment, got, "metrics-addr"); v != "" {
			g.metrics = portOf(t, v)
		}
		list := ""
		if v, ok := s.Environment["GODWIT_SERVICES"]; ok {
			list = fmt.Sprint(v)
		}
		if v := got["services"]; len(v) > 0 {
			list = v[len(v)-1]
		}
		svcs, err := app.ParseServices(list)
		if err != nil {
			t.Errorf("%s: --services: %v", name, err)
		}
		g.services = svcs
		for _, v := range got["peer"] {
			for _, one := range strings.Split(v, ",") {
				pn, base, err := app.ParsePeer(one)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				g.peers[pn] = base
			}
		}
		for _, p := range s.Ports {
			if cp := containerPort(p); cp != g.port {
				t.Errorf("%s: publishes container port %s but listens on %s (--addr %s)", name, cp, g.port, addr)
			}
		}
		out[name] = g
	}
	return out
}

// lastSetting is a serve flag's value from a compose service: the command
// line's last, else its GODWIT_* variable, else "".
func lastSetting(env map[string]any, flags map[string][]string, name string) string {
	if v := flags[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	if v, ok := env[config.EnvName(name)]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

func TestComposeMatchesServeFlags(t *testing.T) {
	c := readCompose(t)
	gs := godwitServices(t, c)
	if len(gs) < 2 {
		t.Fatalf("compose runs %d godwit serve containers; want Godwit split into its services", len(gs))
	}

	// Every service runs somewhere, and split mode means one service per container.
	for _, svc := range app.AllServices {
		var by []string
		for name, g := range gs {
			if slices.Contains(g.services, svc) {
				by = append(by, name)
			}
		}
		if len(by) == 0 {
			t.Errorf("no container runs the %s service", svc)
		}
	}
	for name, g := range gs {
		if len(g.services) != 1 {
			t.Errorf("%s runs %v; want one service per container", name, g.services)
		}
	}

	// Every peer is a compose service that runs that service, at the port it listens on, and
	// the container waits for it.
	for name, g := range gs {
		for svc, base := range g.peers {
			u, err := url.Parse(base)
			if err != nil {
				t.Errorf("%s: peer %s=%s: %v", name, svc, base, err)
				continue
			}
			target, ok := gs[u.Hostname()]
			if !ok {
				t.Errorf("%s: peer %s=%s: %q is not a godwit service in compose.yaml", name, svc, base, u.Hostname())
				continue
			}
			if !slices.Contains(target.services, svc) {
				t.Errorf("%s: peer %s=%s, but %s runs %v", name, svc, base, u.Hostname(), target.services)
			}
			port := u.Port()
			if port == "" {
				port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
			}
			if port != target.port {
				t.Errorf("%s: peer %s=%s, but %s listens on port %s", name, svc, base, u.Hostname(), target.port)
			}
			if !slices.Contains(c.Services[name].dependsOn(), u.Hostname()) {
				t.Errorf("%s calls %s but does not depend_on it", name, u.Hostname())
			}
		}
	}

	// The checkout saga needs every service it calls; the cart reads prices from the catalog.
	// (internal/app refuses to start without them; here the compose file is checked statically.)
	for name, g := range gs {
		if slices.Contains(g.services, app.ServiceCheckout) {
			for _, dep := range []string{app.ServiceCart, app.ServiceCatalog, app.ServiceInventory, app.ServicePayment, app.ServiceOrder, app.ServiceLoyalty} {
				if _, ok := g.peers[dep]; !ok && !slices.Contains(g.services, dep) {
					t.Errorf("%s runs checkout but has no --peer %s", name, dep)
				}
			}
		}
	}

	// Plain references: depends_on, bind mounts, the Dockerfile.
	for name, s := range c.Services {
		for _, d := range s.dependsOn() {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s depends on undefined service %q", name, d)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(root, "deploy", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts undefined volume %q", name, src)
			}
		}
		if s.Build != nil {
			ctx := filepath.Join(root, "deploy", fmt.Sprint(s.Build["context"]))
			if _, err := os.Stat(filepath.Join(ctx, fmt.Sprint(s.Build["dockerfile"]))); err != nil {
				t.Errorf("%s: Dockerfile: %v", name, err)
			}
		}
	}
}

func TestPrometheusScrapesEveryProcess(t *testing.T) {
	c := readCompose(t)
	gs := godwitServices(t, c)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				s, ok := c.Services[host]
				if !ok {
					t.Errorf("job %s: target %s is not a compose service", sc.JobName, target)
					continue
				}
				if g, ok := gs[host]; ok {
					if port != g.metrics {
						t.Errorf("job %s: scrapes %s but %s serves /metrics on port %s", sc.JobName, target, host, g.metrics)
					}
					if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
						t.Errorf("job %s: godwit serves /metrics, not %s", sc.JobName, sc.MetricsPath)
					}
					scraped[host] = true
				} else if len(s.Ports) > 0 && !slices.ContainsFunc(s.Ports, func(p string) bool { return containerPort(p) == port }) {
					t.Errorf("job %s: target %s: %s publishes %v", sc.JobName, target, host, s.Ports)
				}
			}
		}
	}
	for name := range gs {
		if !scraped[name] {
			t.Errorf("Prometheus does not scrape godwit service %s", name)
		}
	}
	if _, ok := c.Services["otel-collector"]; ok && !slices.ContainsFunc(cfg.ScrapeConfigs, func(sc struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	}) bool {
		return sc.JobName == "otel-collector"
	}) {
		t.Error("Prometheus does not scrape the collector")
	}
	for _, rf := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join(root, "deploy", "prometheus", filepath.Base(rf))); err != nil {
			t.Errorf("rule file %s: %v", rf, err)
		}
	}
}

// queries returns every PromQL expression in the dashboard and the alert rules.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "dashboards", "godwit.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("godwit.json: %v", err)
	}
	ds, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if !strings.Contains(string(ds), "uid: "+p.Datasource.UID) {
			t.Errorf("panel %q uses data source %q, which is not provisioned", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, q := range p.Targets {
			out[fmt.Sprintf("panel %q #%d", p.Title, i)] = q.Expr
		}
	}
	raw, err = os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" {
				t.Errorf("alert rule %+v lacks a name, expression or severity", r)
			}
			out["alert "+r.Alert] = r.Expr
		}
	}
	return out
}

// metricRef matches the Godwit metric names a query can use.
var metricRef = regexp.MustCompile(`\b((?:checkout|loyalty|notify|payment|inventory|http_server|db_client)_[a-z0-9_]+)\b`)

// metricFamily strips the series suffixes Prometheus adds to a histogram's name.
func metricFamily(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		f, ok := strings.CutSuffix(name, s)
		if ok && (strings.HasSuffix(f, "_milliseconds") || strings.HasSuffix(f, "_seconds")) {
			return f
		}
	}
	return name
}

// TestDashboardAndAlertMetricsExist runs a server, makes it count a checkout, a declined
// checkout, a redemption and a confirmation, and checks that every metric the dashboard and the
// alerts query is one it serves under that exact Prometheus name.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	qs := queries(t)
	secret := strings.Repeat("5e", 32)
	g := startGodwit(t, []string{"GODWIT_OUTBOX_INTERVAL=100ms"}, "--data-dir", t.TempDir(), "--secret", secret)
	driveTraffic(t, g.base, g.base, secret, 0)

	families := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get(t, g.base+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics = %d", code)
		}
		for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(body, -1) {
			families[m[1]] = true
		}
		if families["notify_deliveries_total"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Counted only when the expiry job expires points or a member transfers them; their names
	// follow the same rule as loyalty_points_redeemed_total, which is checked.
	notDriven := map[string]bool{"loyalty_points_expired_total": true, "loyalty_points_transferred_total": true}
	used := map[string]bool{}
	for where, q := range qs {
		// Label names look like metric names: drop matchers and grouping clauses first.
		bare := regexp.MustCompile(`\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)`).ReplaceAllString(q, " ")
		for _, m := range metricRef.FindAllString(bare, -1) {
			f := metricFamily(m)
			used[f] = true
			if !families[f] && !notDriven[f] {
				t.Errorf("%s queries %s, which the server does not serve (family %s)", where, m, f)
			}
		}
	}
	for _, want := range []string{"checkout_completed_total", "checkout_step_duration_ms_milliseconds", "loyalty_points_outstanding", "loyalty_redemption_latency_ms_milliseconds", "notify_deliveries_total"} {
		if !used[want] {
			t.Errorf("no dashboard panel or alert uses %s", want)
		}
	}
}

// The compose stack's connections fit in PostgreSQL's max_connections with
// room to spare (docs/operations.md, "Connection budget"): every serve process
// opens up to --db-max-conns pooled connections plus one for the revocation
// listener. The room covers PostgreSQL's reserved superuser slots (3) and a
// one-off command (migrate, verify, expire, psql) run beside the stack.
func TestComposeConnectionBudget(t *testing.T) {
	const headroom = 20
	c := readCompose(t)
	maxConnections := 100 // PostgreSQL's default
	for _, a := range c.Services["postgres"].command() {
		if v, ok := strings.CutPrefix(a, "max_connections="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("postgres: max_connections=%q", v)
			}
			maxConnections = n
		}
	}
	total := 0
	var parts []string
	for name, g := range godwitServices(t, c) {
		total += g.maxConns + 1
		parts = append(parts, fmt.Sprintf("%s %d+1", name, g.maxConns))
	}
	slices.Sort(parts)
	if total > maxConnections-headroom {
		t.Errorf("the godwit containers may open %d connections (%s), more than max_connections %d less %d of headroom; set GODWIT_DB_MAX_CONNS lower",
			total, strings.Join(parts, ", "), maxConnections, headroom)
	}
}
