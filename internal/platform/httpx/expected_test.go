package httpx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// An answer the call expects (Call.Expected) leaves the client span out of
// error; any other problem, even with the same status, does not; and the
// caller gets the problem back either way.
func TestExpectedAnswersKeepTheClientSpanOutOfError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("code")
		httpx.WriteError(w, r, nil, errs.Coded(errs.NotFound, code, "no %s", code))
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	hc := &http.Client{Transport: otelhttp.NewTransport(httpx.ExpectedAnswers(http.DefaultTransport), otelhttp.WithTracerProvider(tp))}
	p := httpx.NewPeer("thing", srv.URL, hc, nil)
	for _, c := range []struct {
		code     string
		expected []string
		want     codes.Code
	}{
		{"thing_not_found", []string{"thing_not_found"}, codes.Ok},
		{"route_not_found", []string{"thing_not_found"}, codes.Error},
		{"thing_not_found", nil, codes.Error},
	} {
		n := len(rec.Ended())
		err := p.Do(context.Background(), httpx.Call{Method: "GET", Path: "/x?code=" + c.code, Expected: c.expected, Out: &struct{}{}})
		if errs.KindOf(err) != errs.NotFound || errs.CodeOf(err) != c.code {
			t.Errorf("%s (expected %v): err %v, want NotFound %s", c.code, c.expected, err, c.code)
		}
		ended := rec.Ended()[n:]
		if len(ended) != 1 {
			t.Errorf("%s (expected %v): %d client spans, want 1", c.code, c.expected, len(ended))
		} else if got := ended[0].Status().Code; got != c.want {
			t.Errorf("%s (expected %v): client span status %v, want %v", c.code, c.expected, got, c.want)
		}
	}
}
