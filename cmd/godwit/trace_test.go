package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// recordedBufferTrace is GET /v1/admin/traces/{id} from a server whose payment simulator had
// 2.5 s of injected latency (trimmed to the business spans and two database spans).
const recordedBufferTrace = `{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","dropped_spans":0,"spans":[
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"206461a3b8dedaeb","name":"POST /v1/checkout","kind":"server","service":"godwit","start":"2026-11-21T22:42:52.348664181Z","end":"2026-11-21T22:42:54.867112582Z","duration_ms":2518.448401,"status":{"code":"unset"},"attributes":{"http.request.method":"POST","http.response.status_code":201,"url.path":"/v1/checkout"}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"b0a6c764e5ac9a25","parent_span_id":"206461a3b8dedaeb","name":"checkout.process","kind":"internal","service":"godwit","start":"2026-11-21T22:42:52.349278192Z","end":"2026-11-21T22:42:54.86693155Z","duration_ms":2517.653358,"status":{"code":"unset"},"attributes":{"cart.id":"cart_01f3ba434bcf44afb7cd7be0383afb2f","checkout.currency":"USD","checkout.id":"co_91cc3029ea891a410a005bb1f0628c23","checkout.item_count":1,"checkout.step":"complete","checkout.total":25800,"inventory.reservation_id":"res_ca286aeccfc341bcb89142c0c07cc91e","order.id":"ord_8d6c6e19ab254c2098e7d98f","user.id":"guest"},"events":[{"name":"cart_validated","time":"2026-11-21T22:42:52.350163144Z","attributes":{"cart.item_count":1}},{"name":"payment_processed","time":"2026-11-21T22:42:54.861372574Z","attributes":{"payment.charge_id":"ch_73bac744813f40de872ffc9d"}},{"name":"order_created","time":"2026-11-21T22:42:54.86457499Z","attributes":{"order.id":"ord_8d6c6e19ab254c2098e7d98f"}}]},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"396ec89826a28560","parent_span_id":"b0a6c764e5ac9a25","name":"sql.conn.begin_tx","kind":"client","service":"godwit","start":"2026-11-21T22:42:52.349363582Z","end":"2026-11-21T22:42:52.349403976Z","duration_ms":0.040394,"status":{"code":"unset"},"attributes":{"db.system.name":"sqlite"}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"1a9249f72e70ec9e","parent_span_id":"b0a6c764e5ac9a25","name":"sql.stmt.exec","kind":"client","service":"godwit","start":"2026-11-21T22:42:52.349421012Z","end":"2026-11-21T22:42:52.349533711Z","duration_ms":0.112699,"status":{"code":"unset"},"attributes":{"db.query.text":"INSERT INTO checkouts (id, cart_id, member_id, email, request_hash, state, step, points_redeemed,\n\t\t\ttrace_id, traceparent, lease_token, lease_until, created_at, updated_at)\n\t\t\tVALUES ($1, $2, $3, $4, $5, 'in_progress', 'initiated', $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (id) DO NOTHING","db.system.name":"sqlite"}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"236423675156d537","parent_span_id":"b0a6c764e5ac9a25","name":"cart.validate","kind":"internal","service":"godwit","start":"2026-11-21T22:42:52.349613057Z","end":"2026-11-21T22:42:52.350159099Z","duration_ms":0.546042,"status":{"code":"unset"},"attributes":{"cart.id":"cart_01f3ba434bcf44afb7cd7be0383afb2f","cart.item_count":1,"user.id":"guest"}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"5095f544e8de21e8","parent_span_id":"236423675156d537","name":"cart.fetch_contents","kind":"internal","service":"godwit","start":"2026-11-21T22:42:52.34961503Z","end":"2026-11-21T22:42:52.349908408Z","duration_ms":0.293378,"status":{"code":"unset"},"attributes":{"cart.id":"cart_01f3ba434bcf44afb7cd7be0383afb2f","cart.item_count":1}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"5fafc7dac4b718df","parent_span_id":"236423675156d537","name":"cart.verify_prices","kind":"internal","service":"godwit","start":"2026-11-21T22:42:52.349931367Z","end":"2026-11-21T22:42:52.350156948Z","duration_ms":0.225581,"status":{"code":"unset"},"attributes":{"cart.item_count":1,"cart.stale_prices":0}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"490a180c5d2a0bed","parent_span_id":"b0a6c764e5ac9a25","name":"inventory.reserve_batch","kind":"internal","service":"godwit","start":"2026-11-21T22:42:52.350411341Z","end":"2026-11-21T22:42:52.351072888Z","duration_ms":0.661547,"status":{"code":"unset"},"attributes":{"inventory.item_count":1,"inventory.reservation_id":"res_ca286aeccfc341bcb89142c0c07cc91e","inventory.reservations_created":1}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"98fbc1cedcbd23e0","parent_span_id":"490a180c5d2a0bed","name":"inventory.reserve_item","kind":"internal","service":"godwit","start":"2026-11-21T22:42:52.350639865Z","end":"2026-11-21T22:42:52.350685591Z","duration_ms":0.045726,"status":{"code":"unset"},"attributes":{"product.id":"prod_demo_backpack","quantity.requested":2}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"3248d76ae7fabedb","parent_span_id":"b0a6c764e5ac9a25","name":"payment.process","kind":"client","service":"godwit","start":"2026-11-21T22:42:52.35611232Z","end":"2026-11-21T22:42:54.861277901Z","duration_ms":2505.165581,"status":{"code":"unset"},"attributes":{"payment.amount":25800,"payment.charge_id":"ch_73bac744813f40de872ffc9d","payment.currency":"USD","payment.method_type":"card","payment.status":"succeeded"}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"ff195a7c0353db91","parent_span_id":"3248d76ae7fabedb","name":"payment.gateway_call","kind":"client","service":"godwit","start":"2026-11-21T22:42:52.356120658Z","end":"2026-11-21T22:42:54.861274295Z","duration_ms":2505.153637,"status":{"code":"unset"},"attributes":{"payment.charge_id":"ch_73bac744813f40de872ffc9d","payment.gateway_latency_ms":2505,"payment.operation":"charge","payment.status":"succeeded","peer.service":"payment-simulator"}},
{"trace_id":"138f3d101ebc9a29a7cc6ce46b5ef56c","span_id":"d28317168b7065c9","parent_span_id":"b0a6c764e5ac9a25","name":"order.create","kind":"internal","service":"godwit","start":"2026-11-21T22:42:54.863659912Z","end":"2026-11-21T22:42:54.8645701Z","duration_ms":0.910188,"status":{"code":"unset"},"attributes":{"order.currency":"USD","order.id":"ord_8d6c6e19ab254c2098e7d98f","order.item_count":1,"order.status":"paid","order.total":25800}}
]}`

// recordedJaegerTrace is the Jaeger query API's answer for a declined checkout, with the
// payment spans in their own process as in split mode.
const recordedJaegerTrace = `{"data":[
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spans":[
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"ea71cfc4a057b095","operationName":"POST /v1/checkout","references":[],"startTime":1795300920733353,"duration":5309,"tags":[{"key":"error.type","type":"string","value":"payment_declined"},{"key":"http.request.method","type":"string","value":"POST"},{"key":"http.response.status_code","type":"int64","value":402},{"key":"url.path","type":"string","value":"/v1/checkout"},{"key":"span.kind","type":"string","value":"server"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3","operationName":"checkout.process","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"ea71cfc4a057b095"}],"startTime":1795300920733761,"duration":4712,"tags":[{"key":"cart.id","type":"string","value":"cart_296d82d662e7482fb440d965936f949f"},{"key":"checkout.currency","type":"string","value":"USD"},{"key":"checkout.failure_step","type":"string","value":"processing_payment"},{"key":"checkout.id","type":"string","value":"co_779f133784d720d54bb50ea13462b25d"},{"key":"checkout.item_count","type":"int64","value":1},{"key":"checkout.points_redeemed","type":"int64","value":100},{"key":"checkout.step","type":"string","value":"processing_payment"},{"key":"checkout.total","type":"int64","value":3490},{"key":"inventory.reservation_id","type":"string","value":"res_8de6edbfb78a43bea56270caf9f13de7"},{"key":"user.id","type":"string","value":"m-x"},{"key":"span.kind","type":"string","value":"internal"},{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"error","type":"bool","value":true},{"key":"otel.status_description","type":"string","value":"payment_declined"}],"logs":[{"timestamp":1795300920734245,"fields":[{"key":"event","type":"string","value":"cart_validated"},{"key":"cart.item_count","type":"string","value":"1"}]},{"timestamp":1795300920738437,"fields":[{"key":"event","type":"string","value":"exception"},{"key":"exception.message","type":"string","value":"the payment was declined (generic_decline): payment declined (generic_decline, hard)"},{"key":"exception.type","type":"string","value":"*errs.Error"}]}],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"f74179fabfe03465","operationName":"sql.conn.begin_tx","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920733825,"duration":14,"tags":[{"key":"db.system.name","type":"string","value":"sqlite"},{"key":"span.kind","type":"string","value":"client"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"5d9e64e681291550","operationName":"sql.stmt.exec","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920733856,"duration":50,"tags":[{"key":"db.query.text","type":"string","value":"INSERT INTO checkouts (id, cart_id, member_id, email, request_hash, state, step, points_redeemed,\n\t\t\ttrace_id, traceparent, lease_token, lease_until, created_at, updated_at)\n\t\t\tVALUES ($1, $2, $3, $4, $5, 'in_progress', 'initiated', $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (id) DO NOTHING"},{"key":"db.system.name","type":"string","value":"sqlite"},{"key":"span.kind","type":"string","value":"client"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"18f6b23e4f346a68","operationName":"cart.validate","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920733947,"duration":295,"tags":[{"key":"cart.id","type":"string","value":"cart_296d82d662e7482fb440d965936f949f"},{"key":"cart.item_count","type":"int64","value":1},{"key":"user.id","type":"string","value":"m-x"},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"383f5aa8e96af16e","operationName":"cart.fetch_contents","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"18f6b23e4f346a68"}],"startTime":1795300920733949,"duration":166,"tags":[{"key":"cart.id","type":"string","value":"cart_296d82d662e7482fb440d965936f949f"},{"key":"cart.item_count","type":"int64","value":1},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"88d8a3b08682da70","operationName":"cart.verify_prices","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"18f6b23e4f346a68"}],"startTime":1795300920734117,"duration":124,"tags":[{"key":"cart.item_count","type":"int64","value":1},{"key":"cart.stale_prices","type":"int64","value":0},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"1b239d5f2899967d","operationName":"inventory.reserve_batch","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920734374,"duration":188,"tags":[{"key":"inventory.item_count","type":"int64","value":1},{"key":"inventory.reservation_id","type":"string","value":"res_8de6edbfb78a43bea56270caf9f13de7"},{"key":"inventory.reservations_created","type":"int64","value":1},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"8816235ce8c5c96b","operationName":"inventory.reserve_item","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"1b239d5f2899967d"}],"startTime":1795300920734438,"duration":20,"tags":[{"key":"product.id","type":"string","value":"prod_demo_adapter"},{"key":"quantity.requested","type":"int64","value":1},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"df0b4823f8eee987","operationName":"loyalty.hold_points","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920734681,"duration":197,"tags":[{"key":"loyalty.hold_id","type":"string","value":"01a20046-0d9e-7bc6-90d1-6b1dc49f780f"},{"key":"loyalty.member_id","type":"string","value":"m-x"},{"key":"loyalty.points","type":"int64","value":100},{"key":"loyalty.result","type":"string","value":"held"},{"key":"loyalty.transaction_type","type":"string","value":"hold"},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"ce50b52598b243b0","operationName":"payment.process","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920734965,"duration":554,"tags":[{"key":"payment.amount","type":"int64","value":3390},{"key":"payment.currency","type":"string","value":"USD"},{"key":"payment.decline_code","type":"string","value":"generic_decline"},{"key":"payment.method_type","type":"string","value":"card"},{"key":"payment.status","type":"string","value":"declined"},{"key":"span.kind","type":"string","value":"client"},{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"error","type":"bool","value":true},{"key":"otel.status_description","type":"string","value":"payment_declined"}],"logs":[],"processID":"p2","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"27d61e677311b273","operationName":"payment.gateway_call","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"ce50b52598b243b0"}],"startTime":1795300920734971,"duration":539,"tags":[{"key":"payment.decline_code","type":"string","value":"generic_decline"},{"key":"payment.gateway_latency_ms","type":"int64","value":0},{"key":"payment.operation","type":"string","value":"charge"},{"key":"payment.status","type":"string","value":"declined"},{"key":"peer.service","type":"string","value":"payment-simulator"},{"key":"span.kind","type":"string","value":"client"},{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"error","type":"bool","value":true},{"key":"otel.status_description","type":"string","value":"internal"}],"logs":[{"timestamp":1795300920735406,"fields":[{"key":"event","type":"string","value":"exception"},{"key":"exception.message","type":"string","value":"payment declined (generic_decline, hard)"},{"key":"exception.type","type":"string","value":"*payment.DeclineError"}]}],"processID":"p2","warnings":null,"flags":1},
{"traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"fa8626bdc0be9e88","operationName":"loyalty.void_hold","references":[{"refType":"CHILD_OF","traceID":"a0aa6b7db4078db3ea308bc708047283","spanID":"de82d05e880864b3"}],"startTime":1795300920735540,"duration":932,"tags":[{"key":"loyalty.hold_id","type":"string","value":"01a20046-0d9e-7bc6-90d1-6b1dc49f780f"},{"key":"loyalty.member_id","type":"string","value":"m-x"},{"key":"loyalty.points","type":"int64","value":100},{"key":"loyalty.result","type":"string","value":"voided"},{"key":"span.kind","type":"string","value":"internal"}],"logs":[],"processID":"p1","warnings":null,"flags":1}],"processes":{"p1":{"serviceName":"godwit-checkout","tags":[{"key":"platform","type":"string","value":"ecommerce"}]},"p2":{"serviceName":"godwit-payment","tags":[]}},"warnings":null}],"total":0,"limit":0,"offset":0,"errors":null}`

const (
	slowTraceID     = "138f3d101ebc9a29a7cc6ce46b5ef56c"
	declinedTraceID = "a0aa6b7db4078db3ea308bc708047283"
)

func runTraceCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"trace"}, args...), &out, &errOut, func(string) string { return "" })
	if err != nil && errOut.Len() > 0 {
		t.Logf("stderr:\n%s", errOut.String())
	}
	return out.String(), err
}

// lineOf returns the first output line whose span name (after indentation) is name.
func lineOf(t *testing.T, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, " "), name+" ") {
			return l
		}
	}
	t.Fatalf("no line for %s in:\n%s", name, out)
	return ""
}

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

var barRE = regexp.MustCompile(`\[( *)(=+)( *)\]`)

// barOf returns where a line's bar starts and how long it is, in timeline characters.
func barOf(t *testing.T, l string) (from, n int) {
	t.Helper()
	m := barRE.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("no bar in %q", l)
	}
	return len(m[1]), len(m[2])
}

func TestTraceFromServerBuffer(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != "/v1/admin/traces/"+slowTraceID {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(recordedBufferTrace))
	}))
	defer srv.Close()

	out, err := runTraceCmd(t, "--target", srv.URL, "--token", "admin-token", "--width", "40", slowTraceID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	if auth != "Bearer admin-token" {
		t.Errorf("Authorization = %q", auth)
	}
	if first := strings.SplitN(out, "\n", 2)[0]; !strings.Contains(first, slowTraceID) || !strings.Contains(first, "2.52s") {
		t.Errorf("header line = %q, want the id and the trace duration", first)
	}
	if !strings.Contains(out, "2 database spans folded") {
		t.Errorf("folded database spans not mentioned")
	}
	if strings.Contains(out, "sql.") {
		t.Errorf("database spans shown without --sql")
	}
	// The tree: each span indented one step under its parent.
	for name, depth := range map[string]int{
		"POST /v1/checkout": 0, "checkout.process": 1, "cart.validate": 2, "cart.fetch_contents": 3,
		"cart.verify_prices": 3, "inventory.reserve_batch": 2, "inventory.reserve_item": 3,
		"payment.process": 2, "payment.gateway_call": 3, "order.create": 2,
	} {
		if got := indentOf(lineOf(t, out, name)); got != 2*depth {
			t.Errorf("%s indented %d, want %d", name, got, 2*depth)
		}
	}
	// Order: by start time under each parent.
	order := []string{"cart.validate", "inventory.reserve_batch", "payment.process", "order.create"}
	last := -1
	for _, n := range order {
		i := strings.Index(out, lineOf(t, out, n))
		if i < last {
			t.Errorf("%s printed out of start order", n)
		}
		last = i
	}
	// Bars: the root spans the whole timeline, the gateway call nearly all of it, the cart
	// validation one character at the start, the order after the payment.
	if from, n := barOf(t, lineOf(t, out, "POST /v1/checkout")); from != 0 || n != 40 {
		t.Errorf("root bar = %d+%d, want 0+40", from, n)
	}
	if _, n := barOf(t, lineOf(t, out, "payment.gateway_call")); n < 38 {
		t.Errorf("gateway call bar is %d of 40 characters for 2505 of 2518 ms", n)
	}
	if from, n := barOf(t, lineOf(t, out, "cart.validate")); from != 0 || n != 1 {
		t.Errorf("cart.validate bar = %d+%d, want 0+1", from, n)
	}
	if from, _ := barOf(t, lineOf(t, out, "order.create")); from < 39 {
		t.Errorf("order.create starts at %d, want at the end of the timeline", from)
	}
	for name, dur := range map[string]string{"payment.gateway_call": "2.51s", "checkout.process": "2.52s", "order.create": "0.91ms"} {
		if l := lineOf(t, out, name); !strings.Contains(l, " "+dur) {
			t.Errorf("%s line %q lacks duration %s", name, l, dur)
		}
	}
	if strings.Contains(out, "ERROR") {
		t.Errorf("a successful checkout shows an error")
	}

	// -v after the id, and --sql.
	out, err = runTraceCmd(t, "--target", srv.URL, "--token", "admin-token", slowTraceID, "-v", "--sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"payment.gateway_latency_ms=2505", "peer.service=payment-simulator", "checkout.step=complete", "sql.conn.begin_tx", "http.response.status_code=201"} {
		if !strings.Contains(out, want) {
			t.Errorf("-v --sql output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "db.query.text") {
		t.Errorf("-v prints query text")
	}

	// A trace the buffer does not hold.
	_, err = runTraceCmd(t, "--target", srv.URL, "--token", "admin-token", strings.Repeat("ab", 16))
	if err == nil || !strings.Contains(err.Error(), "recent-trace buffer") {
		t.Errorf("unknown trace: err = %v", err)
	}
}

func TestTraceFromJaeger(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces/"+declinedTraceID {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}`))
			return
		}
		if r.Header.Get("Authorization") != "" {
			t.Errorf("Jaeger was sent a token")
		}
		_, _ = w.Write([]byte(recordedJaegerTrace))
	}))
	defer srv.Close()

	out, err := runTraceCmd(t, "--jaeger", srv.URL+"/", "-v", strings.ToUpper(declinedTraceID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	head := strings.SplitN(out, "\n", 2)[0]
	for _, want := range []string{declinedTraceID, "13 spans", "3 with errors", "godwit-checkout, godwit-payment"} {
		if !strings.Contains(head, want) {
			t.Errorf("header %q lacks %q", head, want)
		}
	}
	cp := lineOf(t, out, "checkout.process")
	if indentOf(cp) != 2 || !strings.HasSuffix(cp, "ERROR payment_declined") {
		t.Errorf("checkout.process line = %q", cp)
	}
	pp := lineOf(t, out, "payment.process")
	if !strings.Contains(pp, "[godwit-payment]") || !strings.Contains(pp, "ERROR payment_declined") {
		t.Errorf("payment.process line = %q, want its service and the error", pp)
	}
	if gc := lineOf(t, out, "payment.gateway_call"); strings.Contains(gc, "[godwit-payment]") || indentOf(gc) != 6 {
		t.Errorf("gateway call line = %q: same service as its parent, one level under it", gc)
	}
	if l := lineOf(t, out, "loyalty.void_hold"); strings.Contains(l, "ERROR") || strings.Contains(l, "[") && strings.Contains(l, "[godwit") {
		t.Errorf("void_hold line = %q", l)
	}
	for _, want := range []string{"payment.decline_code=generic_decline", "checkout.failure_step=processing_payment", "@ cart_validated {cart.item_count=1}", "@ exception"} {
		if !strings.Contains(out, want) {
			t.Errorf("-v output lacks %q", want)
		}
	}
	for _, noise := range []string{"span.kind=", "otel.status_code", "exception.stacktrace", "goroutine"} {
		if strings.Contains(out, noise) {
			t.Errorf("-v output shows %q", noise)
		}
	}

	_, err = runTraceCmd(t, "--jaeger", srv.URL, strings.Repeat("cd", 16))
	if err == nil || !strings.Contains(err.Error(), "does not have it") {
		t.Errorf("unknown trace: err = %v", err)
	}
}

func TestTraceArguments(t *testing.T) {
	if _, err := runTraceCmd(t, "--token", "x"); !errors.Is(err, errUsage) {
		t.Errorf("no id: err = %v, want usage", err)
	}
	if _, err := runTraceCmd(t, "--token", "x", "not-a-trace"); err == nil || !strings.Contains(err.Error(), "32 hex") {
		t.Errorf("bad id: err = %v", err)
	}
	if _, err := runTraceCmd(t, strings.Repeat("0", 32), "--token", "x"); err == nil {
		t.Error("the all-zero id was accepted")
	}
	if _, err := runTraceCmd(t, slowTraceID); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("no token: err = %v", err)
	}
	out, err := runTraceCmd(t, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "--jaeger") {
		t.Errorf("-h: err = %v, out = %q", err, out)
	}
}

func TestTraceBarAndDuration(t *testing.T) {
	for _, tc := range []struct {
		off, n, total time.Duration
		want          string
	}{
		{0, 10, 10, "[==========]"},
		{0, 1, 1000, "[=         ]"},
		{999, 1, 1000, "[         =]"},
		{500, 500, 1000, "[     =====]"},
		{0, 0, 0, "[=         ]"},
	} {
		if got := bar(tc.off, tc.n, tc.total, 10); got != tc.want {
			t.Errorf("bar(%d, %d, %d) = %q, want %q", tc.off, tc.n, tc.total, got, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{
		9200 * time.Millisecond: "9.20s", 12 * time.Second: "12.0s", 300 * time.Millisecond: "300ms",
		4700 * time.Microsecond: "4.7ms", 550 * time.Microsecond: "0.55ms",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
