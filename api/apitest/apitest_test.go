package apitest_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/api/apitest"
)

// TestDocumentIsValid checks the document against the OpenAPI 3.1
// specification, every example against its schema included.
func TestDocumentIsValid(t *testing.T) {
	if _, err := apitest.Load(); err != nil {
		t.Fatal(err)
	}
}

// reporter is a testing.TB that keeps what the checker reports.
type reporter struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *reporter) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *reporter) Helper() {}

const member = `{"id":"m_1","name":"A","email":"a@example.com","tier":"blue","tier_name":"Blue","balance":0,"pending":0,` +
	`"status_points":0,"status_year":2026,"next_tier":null,"created_at":"2026-01-01T00:00:00Z"}`

// TestCheckerReportsWhatTheDocumentDoesNotSay serves canned answers through
// the checker and says which of them it must report.
func TestCheckerReportsWhatTheDocumentDoesNotSay(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		status      int
		contentType string
		answer      string
		want        string // a part of the report; "" for none
	}{
		{"documented answer", "GET", "/v1/members/m_1", "", 200, "application/json", member, ""},
		{"member the schema does not list", "GET", "/v1/members/m_1", "", 200, "application/json",
			strings.Replace(member, `"id"`, `"secret":"x","id"`, 1), "secret"},
		{"wrong type", "GET", "/v1/members/m_1", "", 200, "application/json",
			strings.Replace(member, `"balance":0`, `"balance":"0"`, 1), "balance"},
		{"required member missing", "GET", "/v1/members/m_1", "", 200, "application/json",
			strings.Replace(member, `"tier":"blue",`, ``, 1), "tier"},
		{"undocumented success status", "GET", "/v1/members/m_1", "", 202, "application/json", member, "202"},
		{"listed problem code", "GET", "/v1/members/m_1", "", 404, "application/problem+json",
			`{"type":"urn:godwit:problem:member_not_found","title":"Not Found","status":404,"detail":"no","code":"member_not_found"}`, ""},
		{"common problem code", "GET", "/v1/members/m_1", "", 429, "application/problem+json",
			`{"type":"urn:godwit:problem:rate_limited","title":"Too Many Requests","status":429,"detail":"slow down","code":"rate_limited"}`, ""},
		{"problem code the operation does not list", "GET", "/v1/members/m_1", "", 409, "application/problem+json",
			`{"type":"urn:godwit:problem:sku_taken","title":"Conflict","status":409,"detail":"no","code":"sku_taken"}`, "sku_taken"},
		{"body code on an operation without a body", "GET", "/v1/members/m_1", "", 400, "application/problem+json",
			`{"type":"urn:godwit:problem:unknown_field","title":"Bad Request","status":400,"detail":"no","code":"unknown_field"}`, "unknown_field"},
		{"an error that is not a problem", "GET", "/v1/members/m_1", "", 500, "text/plain", "oops", "problem+json"},
		{"refused request answered with success", "POST", "/v1/members", `{"name":"A","email":"a@example.com","nickname":"x"}`,
			201, "application/json", member, "refuses this request"},
		{"refused request refused", "POST", "/v1/members", `{"name":"A","email":"a@example.com","nickname":"x"}`,
			400, "application/problem+json",
			`{"type":"urn:godwit:problem:unknown_field","title":"Bad Request","status":400,"detail":"no","code":"unknown_field"}`, ""},
		{"undocumented path passes", "GET", "/healthz", "", 200, "text/plain", "ok", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := &reporter{TB: t}
			srv := apitest.Server(rep, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.answer))
			}))
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer x")
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			srv.Close()
			rep.mu.Lock()
			defer rep.mu.Unlock()
			got := strings.Join(rep.errs, "\n")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("reported a documented exchange:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("report %q does not mention %q", got, tc.want)
			}
		})
	}
}
