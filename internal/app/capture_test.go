package app_test

import (
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TestManualCaptureOverHTTP: with Capture manual a checkout answers
// authorized and earns nothing; the admin's fulfilment captures it and earns
// on it; verify is clean at each stage.
func TestManualCaptureOverHTTP(t *testing.T) {
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			r := newRig(t, rigOptions{engine: engine, cfg: app.Config{Demo: true, Capture: app.CaptureManual}})
			w := seedWorld(r)
			first := r.must("GET", "/v1/orders/"+w.orderID, w.selfToken, nil, nil)
			if first["status"] != "authorized" || num(first["points_earned"]) != 0 {
				t.Fatalf("order after checkout: %v", first)
			}
			requireVerified(t, r.a, 0)
			got := r.must("POST", "/v1/orders/"+w.orderID+"/fulfil", w.adminToken, nil, nil)
			authorized := num(first["authorized"].(map[string]any)["amount"])
			if got["status"] != "confirmed" || num(got["charged"].(map[string]any)["amount"]) != authorized || num(got["points_earned"]) <= 0 {
				t.Fatalf("fulfilled: %v", got)
			}
			if code, body := r.call("POST", "/v1/orders/"+w.orderID+"/fulfil", w.selfToken, nil, nil); code != 403 {
				t.Errorf("member fulfil: %d %v", code, body)
			}
			requireVerified(t, r.a, 0)
		})
	}
}

// TestCaptureModeIsChecked: a bad --capture value and manual capture in
// split mode are refused at startup with a clear message.
func TestCaptureModeIsChecked(t *testing.T) {
	if _, err := app.New(t.Context(), app.Config{Capture: "later"}); err == nil || !strings.Contains(err.Error(), `--capture "later"`) {
		t.Errorf("bad capture mode: %v", err)
	}
	_, err := app.New(t.Context(), app.Config{Services: []string{"inventory"}, Capture: app.CaptureManual})
	if err == nil || !strings.Contains(err.Error(), "--capture manual needs every service in one process") {
		t.Errorf("manual capture in split mode: %v", err)
	}
}
