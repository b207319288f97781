package app_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// TestEveryRouteHasSchemas holds every route of the route table to the
// contract's shape: a 2xx answer with a named response schema (204 aside),
// a request body schema on every PUT and wherever one is described, the
// Idempotency-Key parameter exactly where the route honours it, one tag
// that says who may call it, and problem codes listed by error status.
// (What the handlers really send is checked by apitest on every test server.)
func TestEveryRouteHasSchemas(t *testing.T) {
	d, err := apitest.Load(openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatal(err)
	}
	a := newTestApp(t)
	for _, rt := range a.API.Routes() {
		name := rt.Method + " " + normalise(rt.Pattern)
		op := d.Operation(rt.Method, normalise(rt.Pattern))
		if op == nil {
			t.Errorf("%s: not documented", name)
			continue
		}
		for _, msg := range routeContract(rt, op) {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

func routeContract(rt httpx.Route, op *openapi3.Operation) []string {
	var bad []string
	if op.OperationID == "" {
		bad = append(bad, "no operationId")
	}
	var success int
	for status, ref := range op.Responses.Map() {
		n, _ := strconv.Atoi(status)
		if n < 200 || n > 299 {
			continue
		}
		success++
		if n == 204 {
			continue
		}
		if !namedSchemas(ref.Value.Content) {
			bad = append(bad, fmt.Sprintf("response %s has no schema from components (or application/yaml)", status))
		}
	}
	if success == 0 {
		bad = append(bad, "no success status")
	}
	if op.Responses.Default() == nil {
		bad = append(bad, "no default (problem) response")
	}
	if rt.Method == "PUT" && op.RequestBody == nil {
		bad = append(bad, "a PUT without a request body")
	}
	if op.RequestBody != nil && !namedSchemas(op.RequestBody.Value.Content) {
		bad = append(bad, "the request body has no schema from components")
	}
	if honours, documented := rt.Idempotency != httpx.IdempotencyNone, hasIdempotencyKey(op); honours != documented {
		bad = append(bad, fmt.Sprintf("honours Idempotency-Key: %v, documents it: %v", honours, documented))
	}
	if want := tagFor(rt); !slices.Equal(op.Tags, []string{want}) {
		bad = append(bad, fmt.Sprintf("tags %v, want [%s]", op.Tags, want))
	}
	return append(bad, problemCodesShape(op)...)
}

// namedSchemas reports whether every media type has a schema that is a
// component (a reader finds it by name) — or is this document itself.
func namedSchemas(content openapi3.Content) bool {
	if len(content) == 0 {
		return false
	}
	for mt, m := range content {
		if mt == "application/yaml" {
			continue
		}
		if m.Schema == nil || !strings.HasPrefix(m.Schema.Ref, "#/components/schemas/") {
			return false
		}
	}
	return true
}

func hasIdempotencyKey(op *openapi3.Operation) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == "header" && p.Value.Name == "Idempotency-Key" {
			return true
		}
	}
	return false
}

// tagFor is the one tag a route's policy gives it (see the document's tags).
func tagFor(rt httpx.Route) string {
	switch {
	case strings.HasPrefix(rt.Pattern, "/internal/"):
		return "internal"
	case rt.Access.Public:
		return "public"
	case slices.Contains(rt.Access.Scopes, auth.ScopeMember):
		return "member"
	case slices.Contains(rt.Access.Scopes, auth.ScopeService):
		return "service"
	default:
		return "admin"
	}
}

var problemCode = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// problemCodesShape checks an operation's x-problem-codes: error statuses
// mapping to lists of well-formed codes.
func problemCodesShape(op *openapi3.Operation) []string {
	ext, ok := op.Extensions["x-problem-codes"]
	if !ok {
		return nil
	}
	m, ok := ext.(map[string]any)
	if !ok {
		return []string{"x-problem-codes is not a map of status to codes"}
	}
	var bad []string
	for status, v := range m {
		if n, err := strconv.Atoi(status); err != nil || n < 400 || n > 599 {
			bad = append(bad, fmt.Sprintf("x-problem-codes: %q is not an error status", status))
		}
		codes, ok := v.([]any)
		if !ok || len(codes) == 0 {
			bad = append(bad, fmt.Sprintf("x-problem-codes %s: want a list of codes", status))
		}
		for _, c := range codes {
			if s, ok := c.(string); !ok || !problemCode.MatchString(s) {
				bad = append(bad, fmt.Sprintf("x-problem-codes %s: %v is not a code", status, c))
			}
		}
	}
	return bad
}
