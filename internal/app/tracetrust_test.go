package app_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// An inbound traceparent is trusted only from a caller with a valid token.
// Anyone else starts a trace of their own, linked to the context they sent:
// they cannot add spans to a known checkout's trace.
func TestUntrustedTraceparentStartsLinkedTrace(t *testing.T) {
	a := newTestApp(t)
	srv := apitest.Server(t, a.Handler)
	t.Cleanup(srv.Close)
	admin, _ := a.Keys.Mint(auth.ScopeAdmin, "trace-test", time.Hour)
	service, _ := a.Keys.Mint(auth.ScopeService, "checkout", time.Hour)
	member, _ := a.Keys.Mint(auth.ScopeMember, "m-1", time.Hour)
	const (
		theirTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		theirSpan  = "00f067aa0ba902b7"
	)
	// get answers the trace id of the problem (404 for the unknown product, 401
	// for a bad token).
	get := func(token string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/v1/products/no-such-product", nil)
		req.Header.Set("Traceparent", "00-"+theirTrace+"-"+theirSpan+"-01")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p map[string]any
		_ = json.NewDecoder(res.Body).Decode(&p)
		id, _ := p["trace_id"].(string)
		if (res.StatusCode != 404 && res.StatusCode != 401) || id == "" {
			t.Fatalf("GET unknown product = %d %v", res.StatusCode, p)
		}
		return id
	}
	for name, tok := range map[string]string{"anonymous": "", "forged token": "not-a-token", "another secret": forgedAdmin(t)} {
		id := get(tok)
		if id == theirTrace {
			t.Errorf("%s: the request joined the caller's trace", name)
			continue
		}
		server := serverSpan(t, srv.URL, admin, id)
		if server.ParentSpanID != "" || len(server.Links) != 1 || server.Links[0].TraceID != theirTrace || server.Links[0].SpanID != theirSpan {
			t.Errorf("%s: server span parent %q links %+v, want a root linked to %s/%s", name, server.ParentSpanID, server.Links, theirTrace, theirSpan)
		}
	}
	for name, tok := range map[string]string{"service": service, "member": member, "admin": admin} {
		if id := get(tok); id != theirTrace {
			t.Errorf("%s token: trace %s, want the caller's %s", name, id, theirTrace)
		}
	}
}

type spanView struct {
	Kind         string `json:"kind"`
	ParentSpanID string `json:"parent_span_id"`
	Links        []struct {
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
	} `json:"links"`
}

// serverSpan waits for trace id's SERVER span in the recent-trace buffer.
func serverSpan(t *testing.T, base, admin, id string) spanView {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/v1/admin/traces/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var view struct{ Spans []spanView }
		_ = json.NewDecoder(res.Body).Decode(&view)
		res.Body.Close()
		for _, s := range view.Spans {
			if s.Kind == "server" {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has no server span: %d %+v", id, res.StatusCode, view)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func forgedAdmin(t *testing.T) string {
	t.Helper()
	other, err := auth.NewKeys([]byte("another-secret-another-secret-xx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := other.Mint(auth.ScopeAdmin, "x", time.Hour)
	return tok
}
