package loadgen_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loadgen"
)

// cannedAPI answers every route the default mix uses with a fixed, realistic
// body and does no work of its own, so a benchmark against it measures the
// load generator: building, sending and reading its requests.
func cannedAPI() http.Handler {
	const (
		products = `{"products":[` +
			`{"id":"p1","sku":"SKU-1","name":"Trail Mug","price":{"amount":1800,"currency":"USD"},"available":1000},` +
			`{"id":"p2","sku":"SKU-2","name":"Field Notebook","price":{"amount":1200,"currency":"USD"},"available":1000},` +
			`{"id":"p3","sku":"SKU-3","name":"Canvas Tote","price":{"amount":2400,"currency":"USD"},"available":1000},` +
			`{"id":"p4","sku":"SKU-4","name":"Enamel Pin","price":{"amount":600,"currency":"USD"},"available":1000}]}`
		options  = `{"options":[{"id":"o1","name":"Upgrade","type":"upgrade","points":5000},{"id":"o2","name":"Lounge","type":"lounge","points":2500}]}`
		cart     = `{"id":"cart-1","items":[],"total":{"subtotal":{"amount":0,"currency":"USD"}}}`
		item     = `{"id":"cart-1","items":[{"product_id":"p1","quantity":1,"unit_price":{"amount":1800,"currency":"USD"}}],"total":{"subtotal":{"amount":1800,"currency":"USD"}}}`
		checkout = `{"checkout_id":"ck-1","order_id":"ord-1","status":"confirmed","total":{"amount":1800,"currency":"USD"},"charged":{"amount":1800,"currency":"USD"},"points_earned":18,"points_redeemed":0,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`
		earned   = `{"transaction_id":"tx-1","member_id":"m1","points":7500,"base_points":5000,"bonus_points":2500,"balance":30000,"tier":"blue","breakdown":[{"rule":"base","points":5000},{"rule":"fare_class_bonus","points":2500}],"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`
		moved    = `{"transaction_id":"tx-2","points":2500,"balance":27500,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`
	)
	answer := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/v1/products":
			answer(w, 200, products)
		case p == "/v1/redemption-options":
			answer(w, 200, options)
		case p == "/v1/carts":
			answer(w, 201, cart)
		case strings.HasPrefix(p, "/v1/carts/"):
			answer(w, 200, item)
		case p == "/v1/checkout":
			answer(w, 201, checkout)
		case strings.HasSuffix(p, "/activities"):
			answer(w, 201, earned)
		case strings.HasSuffix(p, "/redemptions"), strings.HasSuffix(p, "/transfers"):
			answer(w, 201, moved)
		default:
			http.NotFound(w, r)
		}
	})
}

// BenchmarkDefaultMix is the load generator's own cost per operation of the
// default mix (about two HTTP requests each), client and canned server
// together: compare it before and after a change to how requests are built
// or read.
func BenchmarkDefaultMix(b *testing.B) {
	srv := httptest.NewServer(cannedAPI())
	defer srv.Close()
	cfg := loadgen.Config{
		Target: srv.URL, AdminToken: adminToken, ServiceToken: serviceToken, MemberToken: memberTokenFor,
		MemberIDs: []string{"m1", "m2", "m3", "m4"}, VUs: 4, Requests: b.N, Seed: 1,
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	rep, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	// CPU time, unlike ns/op, hardly moves when other work shares the machine.
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	if rep.Failed() {
		b.Fatalf("%d failed operations: %+v", rep.Total.Errors, rep.Total)
	}
	b.ReportMetric(float64(rep.Requests)/float64(b.N), "requests/op")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
