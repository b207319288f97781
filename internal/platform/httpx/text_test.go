package httpx_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// TestDecodedValuesAreChecked: Decode judges strings and numbers as decoded
// (escapes resolved), at any depth, keys included, and names the field.
func TestDecodedValuesAreChecked(t *testing.T) {
	api := httpx.NewAPI(newKeys(t), nil, nil)
	api.Add(httpx.Route{Method: "POST", Pattern: "/v1/any", Access: auth.Public, Handler: func(w http.ResponseWriter, r *http.Request) error {
		var v any
		if err := httpx.Decode(r, &v); err != nil {
			return err
		}
		httpx.WriteJSON(w, 200, v)
		return nil
	}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	for _, c := range []struct{ body, code, field string }{
		{`{"a":"\u0034111111111111111"}`, "card_data_rejected", ""},
		{`{"a":{"b":["x",{"c":"4111 1111 1111 1111"}]}}`, "card_data_rejected", ""},
		{`{"a":4111111111111111}`, "card_data_rejected", ""},
		{`{"\u0034111111111111111":1}`, "card_data_rejected", ""},
		{`{"a":{"b":1},"c":"x\u0000y"}`, httpx.CodeInvalidText, "c"},
		{`{"a":[{"b":"ok"}],"n":["ok","x\u0000"]}`, httpx.CodeInvalidText, "n"},
		{`{"k\u0000":1}`, httpx.CodeInvalidText, "k\x00"},
		{"{\"a\":\"x\xffy\"}", httpx.CodeInvalidText, ""},
		{`{"a":"ok","b":[1,2,{"c":null}],"d":"1234567890123 order"}`, "", ""},
		{`{"id":"cart_e5a8a89e73dc48ffb6c0984af6858a33","at":"2026-01-02T03:04:05Z"}`, "", ""},
	} {
		r := f.do(t, "POST", "/v1/any", "", c.body, nil)
		if c.code == "" {
			if r.status != 200 {
				t.Errorf("%s: %d %s, want 200", c.body, r.status, r.raw)
			}
			continue
		}
		if r.body["code"] != c.code || (c.field != "" && r.body["field"] != c.field) {
			t.Errorf("%q: %d %s, want %s (field %q)", c.body, r.status, r.raw, c.code, c.field)
		}
		if strings.Contains(r.raw, "4111") {
			t.Errorf("%s: the refusal echoes the number: %s", c.body, r.raw)
		}
	}
	// Path and query values, before any route.
	for path, code := range map[string]string{
		"/v1/any/x%00y":                       httpx.CodeInvalidText,
		"/v1/any/x%ffy":                       httpx.CodeInvalidText,
		"/v1/any/4111111111111111":            "card_data_rejected",
		"/v1/any?q=x%00":                      httpx.CodeInvalidText,
		"/v1/any?q=4111%201111%201111%201111": "card_data_rejected",
	} {
		if r := f.do(t, "GET", path, "", "", nil); r.body["code"] != code || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d %s, want %s", path, r.status, r.raw, code)
		}
	}
}

// TestRedactCardNumbers: what wraps the recorder sees a redacted path and no
// card-bearing query; the API behind still refuses the request.
func TestRedactCardNumbers(t *testing.T) {
	api := httpx.NewAPI(newKeys(t), nil, nil)
	var seen []string
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path+"?"+r.URL.RawQuery+" "+r.RequestURI)
		api.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(httpx.RedactCardNumbers(rec))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	for _, path := range []string{"/v1/carts/6011111111111117/items", "/v1/carts/%36011111111111117", "/v1/x?card=6011-1111-1111-1117"} {
		if r := f.do(t, "GET", path, "", "", nil); r.status != 422 || r.body["code"] != "card_data_rejected" || strings.Contains(r.raw, "1117") {
			t.Errorf("GET %s: %d %s", path, r.status, r.raw)
		}
	}
	for _, s := range seen {
		if strings.Contains(s, "1111") || strings.Contains(s, "%36") {
			t.Errorf("the recorder saw %q", s)
		}
	}
}

// TestServerErrorLogHoldsNoRequestValues: a 5xx is logged with the route
// pattern, not the path, and the error's control bytes and card numbers masked.
func TestServerErrorLogHoldsNoRequestValues(t *testing.T) {
	out := &testlog.Buffer{}
	api := httpx.NewAPI(newKeys(t), nil, slog.New(slog.NewTextHandler(out, nil)))
	api.Add(httpx.Route{Method: "GET", Pattern: "/v1/things/{id}", Access: auth.Public, Handler: func(w http.ResponseWriter, r *http.Request) error {
		return errs.New(errs.Internal, "store failed for %s \x00\x1b[31m 4111111111111111", r.PathValue("id"))
	}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	if r := f.do(t, "GET", "/v1/things/secret-id", "", "", nil); r.status != 500 {
		t.Fatalf("status %d", r.status)
	}
	log := out.String()
	if !strings.Contains(log, `path="GET /v1/things/{id}"`) || strings.Contains(log, "4111") ||
		strings.ContainsAny(log, "\x00\x1b") || strings.Contains(log, `\x00`) || strings.Contains(log, `\u0000`) {
		t.Errorf("log: %s", log)
	}
}
