package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

func newTestApp(t *testing.T) *app.App {
	t.Helper()
	return newTestAppOn(t, dbtest.DSN(t, db.SQLite))
}

func newTestAppOn(t *testing.T, dsn string) *app.App {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	a, err := app.New(ctx, app.Config{DSN: dsn, Secret: []byte("0123456789abcdef0123456789abcdef"), Telemetry: tel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestOpenAPIIsServed(t *testing.T) {
	a := newTestApp(t)
	srv := httptest.NewServer(a.Handler)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/v1/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(string(b), "openapi: 3.1") {
		t.Fatalf("GET /v1/openapi.yaml = %d %.80s", res.StatusCode, b)
	}
}
