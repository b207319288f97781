package loyalty_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/godwit-dev/godwit/internal/events"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// startTime is the test clock's first instant.
var startTime = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type env struct {
	d      *db.DB
	svc    *loyalty.Service
	clock  *clock
	keys   *auth.Keys
	srv    *httptest.Server
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
}

func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	return newEnvWith(t, d, program.Default())
}

func newEnvWith(t *testing.T, d *db.DB, prog *program.Program) *env {
	t.Helper()
	e := &env{d: d, clock: &clock{t: startTime}, spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	svc, err := loyalty.New(loyalty.Config{
		DB: d, Program: prog, Now: e.clock.Now, TracerProvider: tp, MeterProvider: mp,
		OutstandingCacheTTL: time.Nanosecond, Events: events.Recorder{},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.keys, err = auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httpx.NewAPI(e.keys, idempotency.NewStore(d, idempotency.Options{}), nil)
	api.Add(svc.Routes()...)
	e.srv = apitest.Server(t, otelhttp.NewHandler(api, "http.server", otelhttp.WithTracerProvider(tp)))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) token(t testing.TB, scope auth.Scope, sub string) string {
	t.Helper()
	tok, err := e.keys.Mint(scope, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) admin(t testing.TB) string   { return e.token(t, auth.ScopeAdmin, "ops") }
func (e *env) service(t testing.TB) string { return e.token(t, auth.ScopeService, "airline") }

type resp struct {
	status int
	header http.Header
	raw    []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("decode %s: %v", r.raw, err)
	}
}

func (r resp) problem(t testing.TB) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("content type %q, want problem+json; body %s", ct, r.raw)
	}
	var m map[string]any
	r.json(t, &m)
	return m
}

func (e *env) do(t testing.TB, method, path, tok string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, raw: raw}
}

func (e *env) member(t testing.TB, id string) loyalty.Member {
	t.Helper()
	m, err := e.svc.CreateMember(context.Background(), loyalty.NewMember{ID: id, Name: "Member " + id, Email: id + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) get(t testing.TB, id string) loyalty.Member {
	t.Helper()
	m, err := e.svc.GetMember(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) verify(t testing.TB) {
	t.Helper()
	problems, err := e.svc.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error("verify:", p)
	}
}

func usd(cents int64) money.Money { return money.Money{Amount: cents, Currency: "USD"} }

func hotel(ext string, cents int64) loyalty.Activity {
	return loyalty.Activity{Activity: program.Activity{Type: program.ActivityHotel, Amount: usd(cents)}, ExternalID: ext}
}

func flight(ext string, miles int64, fare string) loyalty.Activity {
	return loyalty.Activity{
		Activity:   program.Activity{Type: program.ActivityFlight, Flight: &program.Flight{DistanceMiles: miles, FareClass: fare, Cabin: "economy"}},
		ExternalID: ext,
	}
}

func (e *env) earn(t testing.TB, memberID string, a loyalty.Activity) loyalty.EarnResult {
	t.Helper()
	res, err := e.svc.Earn(context.Background(), memberID, a)
	if err != nil {
		t.Fatalf("earn %s: %v", a.ExternalID, err)
	}
	return res
}

func (e *env) count(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.d.Read().QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
