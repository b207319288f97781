package loadgen_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loadgen"
)

func sampleReport() *loadgen.Report {
	checkout := loadgen.OpStats{
		Name: "checkout", Count: 300, Errors: 2, Rejected: 15, Throughput: 10, Status5xx: 2,
		P50: 12 * time.Millisecond, P90: 30 * time.Millisecond, P99: 95500 * time.Microsecond, Max: 1500 * time.Millisecond,
		ErrorsByCode:   map[string]int64{"payment_declined": 15, "internal": 2},
		FailuresByCode: map[string]int64{"internal": 2},
	}
	browse := loadgen.OpStats{
		Name: "browse", Count: 100, Throughput: 3.3333,
		P50: 800 * time.Microsecond, P90: 2 * time.Millisecond, P99: 4 * time.Millisecond, Max: 9 * time.Millisecond,
		ErrorsByCode: map[string]int64{}, FailuresByCode: map[string]int64{},
	}
	total := loadgen.OpStats{
		Name: "total", Count: 400, Errors: 2, Rejected: 15, Throughput: 13.3333, Status5xx: 2,
		P50: 10 * time.Millisecond, P90: 28 * time.Millisecond, P99: 90 * time.Millisecond, Max: 1500 * time.Millisecond,
		ErrorsByCode:   map[string]int64{"payment_declined": 15, "internal": 2},
		FailuresByCode: map[string]int64{"internal": 2},
	}
	return &loadgen.Report{
		RunID: "abcd1234", Target: "http://127.0.0.1:8080", Model: "open", Rate: 13.5, VUs: 16,
		Mix:     map[string]int{"checkout": 3, "browse": 1},
		Started: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Elapsed: 30 * time.Second, Setup: 2 * time.Second,
		Members: 200, Requests: 1600, Ops: []loadgen.OpStats{browse, checkout}, Total: total,
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	sampleReport().WriteTable(&b)
	out := b.String()
	for _, want := range []string{
		"run abcd1234 against http://127.0.0.1:8080",
		"open model, 13.5 ops/s scheduled; mix browse=1,checkout=3; 200 members",
		"load 30.00s (setup 2.00s), 400 operations, 1600 HTTP requests (53.3/s)",
		"payment_declined=15, internal=2 FAILED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// One aligned row per operation and the total, in order.
	lines := strings.Split(out, "\n")
	var rows []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 10 && (f[0] == "operation" || f[0] == "browse" || f[0] == "checkout" || f[0] == "total") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("want header + 3 rows, got %d:\n%s", len(rows), out)
	}
	wantFields := [][]string{
		{"operation", "count", "ops/s", "failed", "rejected", "5xx", "p50", "p90", "p99", "max"},
		{"browse", "100", "3.3", "0", "0", "0", "800µs", "2.00ms", "4.00ms", "9.00ms"},
		{"checkout", "300", "10.0", "2", "15", "2", "12.00ms", "30.00ms", "95.50ms", "1.50s"},
		{"total", "400", "13.3", "2", "15", "2", "10.00ms", "28.00ms", "90.00ms", "1.50s"},
	}
	for i, r := range rows {
		if diff := cmp.Diff(wantFields[i], strings.Fields(r)); diff != "" {
			t.Errorf("row %d (-want +got):\n%s", i, diff)
		}
		if w, hw := utf8.RuneCountInString(r), utf8.RuneCountInString(rows[0]); w != hw {
			t.Errorf("row %d is %d wide, header %d: not aligned\n%s", i, w, hw, out)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		RunID    string         `json:"run_id"`
		Model    string         `json:"model"`
		Rate     float64        `json:"rate"`
		Mix      map[string]int `json:"mix"`
		Started  time.Time      `json:"started"`
		Elapsed  float64        `json:"elapsed_s"`
		Requests int64          `json:"requests"`
		Ops      []struct {
			Name           string           `json:"name"`
			Count          int64            `json:"count"`
			Errors         int64            `json:"errors"`
			Rejected       int64            `json:"rejected"`
			P99            float64          `json:"p99_ms"`
			Max            float64          `json:"max_ms"`
			ErrorsByCode   map[string]int64 `json:"errors_by_code"`
			FailuresByCode map[string]int64 `json:"failures_by_code"`
			Status5xx      int64            `json:"status_5xx"`
		} `json:"ops"`
		Total struct {
			Count  int64 `json:"count"`
			Errors int64 `json:"errors"`
		} `json:"total"`
	}
	dec := json.NewDecoder(&b)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.RunID != "abcd1234" || got.Model != "open" || got.Rate != 13.5 || got.Elapsed != 30 || got.Requests != 1600 ||
		!got.Started.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) || got.Mix["checkout"] != 3 {
		t.Errorf("header fields: %+v", got)
	}
	if len(got.Ops) != 2 || got.Ops[1].Name != "checkout" {
		t.Fatalf("ops: %+v", got.Ops)
	}
	co := got.Ops[1]
	if co.Count != 300 || co.Errors != 2 || co.Rejected != 15 || co.P99 != 95.5 || co.Max != 1500 || co.Status5xx != 2 ||
		co.ErrorsByCode["payment_declined"] != 15 || co.FailuresByCode["internal"] != 2 {
		t.Errorf("checkout: %+v", co)
	}
	if got.Ops[0].ErrorsByCode == nil {
		t.Error("empty code maps should be {} not null")
	}
	if got.Total.Count != 400 || got.Total.Errors != 2 {
		t.Errorf("total: %+v", got.Total)
	}
}

func TestReportFromRunMatchesItsJSON(t *testing.T) {
	f := newFake(t, fakeBehaviour{rejectRedeemN: 3})
	cfg := baseConfig(f)
	cfg.Requests = 200
	rep := run(t, cfg)

	var sum int64
	for _, s := range rep.Ops {
		sum += s.Count
		if s.Count > 0 && (s.P50 <= 0 || s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.Max) {
			t.Errorf("%s: percentiles out of order: %v %v %v %v", s.Name, s.P50, s.P90, s.P99, s.Max)
		}
	}
	if sum != rep.Total.Count || rep.Total.Count != 200 {
		t.Errorf("rows add to %d, total %d, want 200", sum, rep.Total.Count)
	}
	if rep.RunID == "" || rep.Model != "closed" || rep.VUs != 4 || rep.Members != 4 {
		t.Errorf("report header: %+v", rep)
	}

	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if total := got["total"].(map[string]any); total["count"] != float64(200) {
		t.Errorf("JSON total %v", total)
	}
	var tb bytes.Buffer
	rep.WriteTable(&tb)
	if !strings.Contains(tb.String(), "insufficient_points=") || regexp.MustCompile(`=\d+ FAILED`).MatchString(tb.String()) {
		t.Errorf("table:\n%s", tb.String())
	}
}
