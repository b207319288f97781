package app_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/godwit-dev/godwit/api"
)

// TestOpenAPIMatchesRoutes keeps the OpenAPI document true: every route the
// server registers is documented with its method, and every documented
// operation exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	a := newTestApp(t)
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range a.API.Routes() {
		registered[r.Method+" "+normalise(r.Pattern)] = true
	}
	var missing, stale []string
	for k := range registered {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !registered[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 || len(stale) > 0 {
		t.Fatalf("OpenAPI out of date.\nroutes not documented:\n  %s\ndocumented but not routed:\n  %s",
			strings.Join(missing, "\n  "), strings.Join(stale, "\n  "))
	}
}

var wildcard = regexp.MustCompile(`\{([a-z_]+)(\.\.\.)?\}`)

// normalise turns ServeMux patterns into OpenAPI paths ({id...} → {id}).
func normalise(p string) string {
	return wildcard.ReplaceAllStringFunc(p, func(s string) string {
		return fmt.Sprintf("{%s}", wildcard.FindStringSubmatch(s)[1])
	})
}
