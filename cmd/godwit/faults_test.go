package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/api/apitest"
)

// TestLoadgenFaultsSetAndRestore sets loadgen's fault flags through the
// generated client against a fake admin API held to the document, and checks
// that the settings not asked for are kept and everything is put back after.
func TestLoadgenFaultsSetAndRestore(t *testing.T) {
	type state struct {
		LatencyMS   int64  `json:"latency_ms"`
		DeclineRate int64  `json:"decline_rate_percent"`
		DeclineCode string `json:"decline_code"`
		ReserveMS   int64  `json:"reserve_delay_ms"`
	}
	var (
		mu  sync.Mutex
		cur = state{LatencyMS: 40, DeclineRate: 3, DeclineCode: "insufficient_funds", ReserveMS: 0}
	)
	answer := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	payment := func() any {
		return map[string]any{"latency_ms": cur.LatencyMS, "decline_rate_percent": cur.DeclineRate, "decline_code": cur.DeclineCode}
	}
	inventory := func() any { return map[string]any{"reserve_delay_ms": cur.ReserveMS} }
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/admin/faults/payment", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPut {
			// An absent member is zero, as the document says.
			var in state
			_ = json.NewDecoder(r.Body).Decode(&in)
			if in.LatencyMS > 60000 {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:godwit:problem:invalid_field", "title": "Invalid field",
					"status": 400, "detail": "latency_ms must be at most 60000", "code": "invalid_field", "field": "latency_ms"})
				return
			}
			cur.LatencyMS, cur.DeclineRate, cur.DeclineCode = in.LatencyMS, in.DeclineRate, in.DeclineCode
		}
		answer(w, payment())
	})
	mux.HandleFunc("/v1/admin/faults/inventory", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPut {
			var in state
			_ = json.NewDecoder(r.Body).Decode(&in)
			cur.ReserveMS = in.ReserveMS
		}
		answer(w, inventory())
	})
	var auth string
	srv := apitest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = r.Header.Get("Authorization")
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))

	restore, err := applyFaults(context.Background(), srv.URL, "admin-token", faultSettings{paymentLatencyMS: 250, declineRate: -1, reserveDelayMS: 15})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	during, gotAuth := cur, auth
	mu.Unlock()
	if want := (state{LatencyMS: 250, DeclineRate: 3, DeclineCode: "insufficient_funds", ReserveMS: 15}); during != want {
		t.Errorf("during the run: %+v, want %+v", during, want)
	}
	if gotAuth != "Bearer admin-token" {
		t.Errorf("Authorization = %q", gotAuth)
	}
	restore()
	mu.Lock()
	after := cur
	mu.Unlock()
	if want := (state{LatencyMS: 40, DeclineRate: 3, DeclineCode: "insufficient_funds"}); after != want {
		t.Errorf("after the run: %+v, want %+v", after, want)
	}

	// A refused setting is an error naming the problem's code.
	_, err = applyFaults(context.Background(), srv.URL, "admin-token", faultSettings{paymentLatencyMS: 90000, declineRate: -1, reserveDelayMS: -1})
	if err == nil || !strings.Contains(err.Error(), "400 invalid_field") {
		t.Fatalf("a latency over the document's maximum: %v", err)
	}
}
