package app_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

func TestServiceNames(t *testing.T) {
	tests := []struct {
		in       string
		want     []string
		wantName string
	}{
		{"", app.AllServices, "godwit"},
		{"all", app.AllServices, "godwit"},
		{"inventory", []string{"inventory"}, "godwit-inventory"},
		{"notify, order", []string{"order", "notify"}, "godwit-order+notify"},
		{"checkout,cart,checkout", []string{"checkout", "cart"}, "godwit-checkout+cart"},
	}
	for _, tc := range tests {
		got, err := app.ParseServices(tc.in)
		if err != nil {
			t.Fatalf("ParseServices(%q): %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseServices(%q) (-want +got):\n%s", tc.in, diff)
		}
		if name := app.ServiceName(got); name != tc.wantName {
			t.Errorf("ServiceName(%v) = %q, want %q", got, name, tc.wantName)
		}
	}
	for _, bad := range []string{"gateway", "cart,,bogus", ","} {
		if _, err := app.ParseServices(bad); err == nil {
			t.Errorf("ParseServices(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"payment", "payment=", "bogus=http://x", "payment=ftp://x", "payment=localhost:80"} {
		if _, _, err := app.ParsePeer(bad); err == nil {
			t.Errorf("ParsePeer(%q) accepted", bad)
		}
	}
}

func newSplitApp(t *testing.T, services []string, peers map[string]string) (*app.App, error) {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	a, err := app.New(context.Background(), app.Config{DSN: dbtest.DSN(t, db.SQLite), Secret: []byte("0123456789abcdef0123456789abcdef"),
		Telemetry: tel, Services: services, Peers: peers})
	if a != nil {
		t.Cleanup(func() { _ = a.Close() })
	}
	return a, err
}

// TestSplitRoutes checks that a process serves only its services' routes and
// refuses to start without the peers it needs.
func TestSplitRoutes(t *testing.T) {
	_, err := newSplitApp(t, []string{"checkout"}, map[string]string{"cart": "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "--peer catalog=URL") || !strings.Contains(err.Error(), "GODWIT_PEER_PAYMENT") {
		t.Fatalf("checkout without peers: %v", err)
	}
	a, err := newSplitApp(t, []string{"inventory"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Checkout != nil || a.Loyalty != nil || a.Outbox != nil {
		t.Fatal("an inventory process built other services")
	}
	for _, r := range a.API.Routes() {
		inventory := strings.Contains(r.Pattern, "/inventory")
		admin := r.Pattern == "/v1/openapi.yaml" || strings.HasPrefix(r.Pattern, "/v1/admin/traces") || strings.HasPrefix(r.Pattern, "/v1/admin/tokens/") ||
			r.Pattern == "/v1/admin/faults" || r.Pattern == "/v1/admin/faults/{point}" // the generic routes serve this process's points
		if !inventory && !admin {
			t.Errorf("inventory process routes %s %s", r.Method, r.Pattern)
		}
	}
	peers := map[string]string{}
	for _, s := range []string{"cart", "catalog", "inventory", "payment", "order", "loyalty"} {
		peers[s] = "http://127.0.0.1:1"
	}
	a, err = newSplitApp(t, []string{"checkout"}, peers)
	if err != nil {
		t.Fatal(err)
	}
	if a.Checkout == nil || a.Catalog != nil {
		t.Fatal("checkout process: wrong services")
	}
}
