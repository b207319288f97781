package app_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// The card numbers the test sends; they must be refused and never emitted.
var testCards = []string{"4111 1111 1111 1111", "4242424242424242", "5555-5555-5555-4444"}

var (
	jwtShape   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.`)
	emailShape = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)
	// Payment method ids of the simulator and Stripe test tokens.
	paymentTokenShape = regexp.MustCompile(`\b(tok_[A-Za-z0-9]{3,}|pm_[A-Za-z0-9]{14,}|card_[A-Za-z0-9]{14,})`)
)

// cardLike reports a standalone run of 13–19 digits (single spaces or dashes
// allowed between them) that passes the Luhn check. Digits inside identifiers
// (hex ids, keys) are not card numbers.
func cardLike(s string) string {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isAlnum := func(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.')) {
			continue
		}
		var digits []byte
		for j := i; j < len(s); j++ {
			c := s[j]
			if isDigit(c) {
				digits = append(digits, c-'0')
				if len(digits) > 19 {
					break
				}
				end := j+1 == len(s) || (!isAlnum(s[j+1]) && s[j+1] != '.')
				if len(digits) >= 13 && end && luhn(digits) {
					return s[i : j+1]
				}
				continue
			}
			if (c == ' ' || c == '-') && j+1 < len(s) && isDigit(s[j+1]) {
				continue
			}
			break
		}
	}
	return ""
}

func luhn(d []byte) bool {
	sum := 0
	for i := range d {
		v := int(d[len(d)-1-i])
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// leakScanner collects every place a secret or personal datum shows up.
type leakScanner struct {
	forbidden []string // exact strings: the server secret (raw, hex), tokens, test cards
	found     map[string]bool
}

func newLeakScanner(exact ...string) *leakScanner {
	return &leakScanner{forbidden: exact, found: map[string]bool{}}
}

func (l *leakScanner) report(where, what, value string) {
	if len(value) > 160 {
		value = value[:160] + "…"
	}
	l.found[fmt.Sprintf("%s: %s in %q", where, what, value)] = true
}

// text checks a string that may be anything (a log line, an attribute value).
func (l *leakScanner) text(where, s string) {
	for _, f := range l.forbidden {
		if f != "" && strings.Contains(s, f) {
			l.report(where, "forbidden value "+f[:min(len(f), 12)]+"…", s)
		}
	}
	if m := jwtShape.FindString(s); m != "" {
		l.report(where, "bearer token", s)
	}
	if m := emailShape.FindString(s); m != "" {
		l.report(where, "email address "+m, s)
	}
	if m := paymentTokenShape.FindString(s); m != "" {
		l.report(where, "payment method id "+m, s)
	}
	if m := cardLike(s); m != "" {
		l.report(where, "card-like number "+m, s)
	}
}

// idKeys hold hex trace and span ids, which may start with a long digit run.
func idKey(k string) bool {
	k = strings.ToLower(k)
	return strings.HasSuffix(k, "trace_id") || strings.HasSuffix(k, "span_id") || strings.HasSuffix(k, "traceid") || strings.HasSuffix(k, "spanid")
}

// value walks an attribute value or decoded JSON: strings are scanned, numbers
// only for the exact forbidden strings (a duration in ns is not a card).
func (l *leakScanner) value(where string, v any) {
	switch v := v.(type) {
	case string:
		l.text(where, v)
	case []byte:
		l.text(where, string(v))
	case map[string]any:
		for k, x := range v {
			l.text(where+" key", k)
			if idKey(k) {
				continue
			}
			l.value(where+"."+k, x)
		}
	case []any:
		for i, x := range v {
			l.value(fmt.Sprintf("%s[%d]", where, i), x)
		}
	case []string:
		for i, x := range v {
			l.value(fmt.Sprintf("%s[%d]", where, i), x)
		}
	}
}

func (l *leakScanner) attrs(where string, m map[string]any) {
	for k, v := range m {
		l.text(where+" attribute key", k)
		if idKey(k) {
			continue
		}
		l.value(where+" attribute "+k, v)
	}
}

// logLines scans JSON log lines field by field (trace and span ids skipped) and
// each whole line for the exact forbidden strings and token shapes.
func (l *leakScanner) logLines(where, out string) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err == nil {
			l.value(where, m)
		} else {
			l.text(where, line)
		}
		for _, f := range l.forbidden {
			if f != "" && strings.Contains(line, f) {
				l.report(where, "forbidden value", line)
			}
		}
	}
}

func (l *leakScanner) failures() []string {
	out := make([]string, 0, len(l.found))
	for k := range l.found {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestNoSecretsOrPersonalDataInTelemetry runs the end-to-end scenarios with an
// OTLP receiver and a log capture, then searches everything emitted — span
// names, attributes and events, resources, metric labels, exported and local
// log records, the recent-trace view and /metrics — for card numbers, tokens,
// the signing secret, payment method ids and email addresses.
func TestNoSecretsOrPersonalDataInTelemetry(t *testing.T) {
	rcv := otlptest.NewReceiver(t)
	logs := &testlog.Buffer{}
	r := newRig(t, rigOptions{
		getenv: rcv.Env(map[string]string{
			"OTEL_BSP_SCHEDULE_DELAY":     "50",
			"OTEL_BLRP_SCHEDULE_DELAY":    "50",
			"OTEL_METRIC_EXPORT_INTERVAL": "200",
		}),
		logOut: logs,
		cfg:    app.Config{Demo: true},
	})
	ctx := context.Background()
	w := seedWorld(r) // members with emails, earning, a member checkout paying with points

	// A guest checkout with an email address.
	guest := r.buy("", w.productID, map[string]any{"payment": map[string]any{"token": "tok_mastercard"}, "email": "guest.buyer@example.test"})
	// A declined card, as a member and as a guest.
	for _, tok := range []string{w.selfToken, ""} {
		body := map[string]any{"cart_id": r.cartWith(tok, w.productID), "payment": map[string]any{"token": "tok_chargeDeclined"}}
		if tok == "" {
			body["email"] = "declined.guest@example.test"
		}
		if code, out := r.call("POST", "/v1/checkout", tok, body, idem("declined")); code != 402 {
			t.Fatalf("declined checkout: %d %v", code, out)
		}
	}
	// A redemption, a member transfer and a partner transfer.
	if code, out := r.call("POST", "/v1/members/m-self/redemptions", w.selfToken, map[string]any{"option_id": w.redeemOptions[0]}, idem("redeem")); code >= 500 {
		t.Fatalf("redemption: %d %v", code, out)
	}
	r.must("POST", "/v1/members/m-self/transfers", w.selfToken, map[string]any{"to_member_id": "m-other", "points": 500}, idem("transfer"))
	if code, out := r.call("POST", "/v1/members/m-other/transfers", w.otherToken, map[string]any{"partner_id": "northwind-airways", "points": 1000}, idem("partner")); code >= 500 {
		t.Fatalf("partner transfer: %d %v", code, out)
	}
	// Refunds: the member order in full, the guest order in part.
	r.must("POST", "/v1/orders/"+w.orderID+"/refund", w.serviceToken, map[string]any{}, idem("refund"))
	if code, out := r.call("POST", "/v1/orders/"+guest["order_id"].(string)+"/refund", w.adminToken,
		map[string]any{"amount": map[string]any{"amount": 100, "currency": "USD"}}, idem("refund")); code >= 500 {
		t.Fatalf("partial refund: %d %v", code, out)
	}
	// Admin and read calls, and refusals that carry tokens.
	for _, p := range []string{"/v1/admin/traces", "/v1/admin/verify", "/v1/admin/promotions", "/v1/admin/faults/payment"} {
		r.must("GET", p, w.adminToken, nil, nil)
	}
	r.must("GET", "/v1/members/m-self/statement", w.selfToken, nil, nil)
	r.must("GET", "/v1/members/m-self/orders", w.selfToken, nil, nil)
	r.must("GET", "/v1/orders/"+w.orderID, w.selfToken, nil, nil)
	r.call("GET", "/v1/admin/traces", w.selfToken, nil, nil)           // 403
	r.call("GET", "/v1/members/m-self", w.selfToken+"x", nil, nil)     // 401, a tampered token
	r.call("GET", "/v1/members/m-self", "Bearer "+rigSecret, nil, nil) // 401, the secret as a token
	r.call("POST", "/v1/members", w.serviceToken, map[string]any{"id": "m-bad", "email": "not an email@"}, nil)

	// Card numbers in a checkout body are refused before anything else.
	for i, card := range testCards {
		for _, body := range []map[string]any{
			{"cart_id": w.guestCartID, "payment": map[string]any{"token": card}, "email": "card.guest@example.test"},
			{"cart_id": w.guestCartID, "payment": map[string]any{"token": "tok_visa", "card_number": card}, "email": "card.guest@example.test"},
		} {
			before := fingerprint(t, r.a.DB)
			code, out := r.call("POST", "/v1/checkout", "", body, idem(fmt.Sprintf("card%d", i)))
			if code != 422 || out["code"] != "card_data_rejected" {
				t.Errorf("checkout with card %q: %d %v, want 422 card_data_rejected", card, code, out)
			}
			if d := diff(before, fingerprint(t, r.a.DB), "idempotency_keys"); d != "" {
				t.Errorf("a refused card checkout wrote: %s", d)
			}
			if b, _ := json.Marshal(out); strings.Contains(string(b), card) {
				t.Errorf("the refusal echoes the card number: %s", b)
			}
		}
	}
	// Card numbers behind JSON escapes and in a URL path: decoded values and
	// path parameters are checked, and paths are redacted before telemetry.
	escaped := []struct {
		method, path string
		body         string
	}{
		{"POST", "/v1/checkout", `{"cart_id":"` + w.guestCartID + `","payment":{"token":"tok_visa"},"email":"\u0034111111111111111@example.test"}`},
		{"POST", "/v1/checkout", `{"cart_id":"\u0034012888888881881","payment":{"token":"tok_visa"},"email":"escaped.guest@example.test"}`},
		{"POST", "/v1/carts/" + w.guestCartID + "/items", `{"product_id":"\u0036011111111111117","quantity":1}`},
		{"POST", "/v1/carts/6011111111111117/items", `{"product_id":"` + w.productID + `","quantity":1}`},
		{"GET", "/v1/carts/6011-1111-1111-1117", ""},
		{"GET", "/v1/products/%34012888888881881", ""},
		{"GET", "/v1/no-such-route/4012888888881881", ""},
	}
	for _, c := range escaped {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		before := fingerprint(t, r.a.DB)
		code, out, _ := r.raw(c.method, c.path, "", body, idem("escaped"))
		if code != 422 || !strings.Contains(string(out), `"code":"card_data_rejected"`) {
			t.Errorf("%s %s %s: %d %s, want 422 card_data_rejected", c.method, c.path, c.body, code, out)
		}
		if m := cardLike(string(out)); m != "" {
			t.Errorf("%s %s: the refusal echoes %s: %s", c.method, c.path, m, out)
		}
		if d := diff(before, fingerprint(t, r.a.DB), "idempotency_keys"); d != "" {
			t.Errorf("%s %s wrote: %s", c.method, c.path, d)
		}
	}
	// Confirmations go out (the outbox worker logs its work too).
	if _, err := r.a.Outbox.DeliverDue(ctx); err != nil {
		t.Fatalf("outbox: %v", err)
	}
	requireVerified(t, r.a, 0)

	// What the process exposes itself, before shutdown.
	_, traces, _ := r.raw("GET", "/v1/admin/traces?limit=500", w.adminToken, nil, nil)
	var recent struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	_ = json.Unmarshal(traces, &recent)
	var views []string
	for _, tr := range recent.Traces {
		_, v, _ := r.raw("GET", "/v1/admin/traces/"+tr.TraceID, w.adminToken, nil, nil)
		views = append(views, string(v))
	}
	_, metricsText, _ := r.raw("GET", "/metrics", "", nil, nil)

	if err := r.tel.Shutdown(ctx); err != nil { // flush every exporter
		t.Fatalf("telemetry shutdown: %v", err)
	}

	secretHex := hex.EncodeToString([]byte(rigSecret))
	tokens := []string{w.selfToken, w.otherToken, w.serviceToken, w.adminToken}
	exact := append([]string{rigSecret, secretHex}, tokens...)
	for _, c := range append(testCards, "4012888888881881", "6011111111111117", "6011-1111-1111-1117") {
		exact = append(exact, c, strings.NewReplacer(" ", "", "-", "").Replace(c))
	}
	l := newLeakScanner(exact...)

	spans := rcv.Spans()
	if len(spans) < 50 {
		t.Fatalf("only %d spans reached the receiver", len(spans))
	}
	for _, s := range spans {
		where := "span " + s.Name
		l.text(where+" name", s.Name)
		l.text(where+" status", s.Status.Message)
		l.attrs(where, s.Attributes)
		l.attrs(where+" resource", s.Resource)
		for _, e := range s.Events {
			l.text(where+" event", e.Name)
			l.attrs(where+" event "+e.Name, e.Attributes)
		}
	}
	metrics := rcv.Metrics()
	for _, m := range metrics {
		l.attrs("metric "+m.Name+" resource", m.Resource)
		for _, p := range m.Points {
			l.attrs("metric "+m.Name+" label", p.Attributes)
		}
	}
	exported := rcv.Logs()
	for _, rec := range exported {
		l.value("log record body", rec.Body)
		l.attrs("log record", rec.Attributes)
		l.attrs("log record resource", rec.Resource)
	}
	local := logs.String()
	l.logLines("local log", local)
	for _, v := range views {
		l.logLines("trace view", v)
	}
	for _, line := range strings.Split(string(metricsText), "\n") {
		if i, j := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}'); !strings.HasPrefix(line, "#") && i >= 0 && j > i {
			l.text("/metrics label", line[i:j+1])
		}
	}
	if len(metrics) == 0 || len(exported) == 0 || local == "" {
		t.Fatalf("nothing to check: %d metrics, %d exported logs, %d bytes of local logs", len(metrics), len(exported), len(local))
	}
	for _, f := range l.failures() {
		t.Error(f)
	}
	t.Logf("scanned %d spans, %d metrics, %d exported log records, %d bytes of local logs, %d trace views",
		len(spans), len(metrics), len(exported), len(local), len(views))
}

// TestLeakScannerCatches proves the scanner sees each kind of leak and lets
// ordinary telemetry through.
func TestLeakScannerCatches(t *testing.T) {
	leaks := []string{
		"card 4111 1111 1111 1111 used", `{"pan":"5555-5555-5555-4444"}`, "n=4242424242424242",
		"auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "to ava@example.test", "pm tok_visa", "the " + rigSecret,
	}
	for _, s := range leaks {
		l := newLeakScanner(rigSecret)
		l.text("test", s)
		if len(l.failures()) == 0 {
			t.Errorf("missed the leak in %q", s)
		}
	}
	clean := []string{
		"cart_e5a8a89e73dc48ffb6c0984af6858a33", "trace 4bf92f3577b34da6a3ce929d0e0e4736", "took 1234567890123 ns?",
		"card_data_rejected", "order ord_1234567890123456abc", "2026-01-02T03:04:05.123456789Z", "1.7976931348623157e+308",
	}
	for _, s := range clean {
		l := newLeakScanner(rigSecret)
		l.text("test", s)
		if f := l.failures(); len(f) > 0 && !strings.Contains(s, "took") {
			t.Errorf("false alarm on %q: %v", s, f)
		}
	}
}
