package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oasdiff/oasdiff/checker"
	"github.com/oasdiff/oasdiff/diff"
	"github.com/oasdiff/oasdiff/load"
)

// breakingChanges lists what oasdiff calls a breaking change (level ERR) from
// the document base to the document rev.
func breakingChanges(t *testing.T, base, rev []byte) []string {
	t.Helper()
	loader := openapi3.NewLoader()
	s1, err := load.NewSpecInfoFromData(loader, base, "openapi.baseline.yaml")
	if err != nil {
		t.Fatalf("load the baseline: %v", err)
	}
	s2, err := load.NewSpecInfoFromData(loader, rev, "openapi.yaml")
	if err != nil {
		t.Fatalf("load the document: %v", err)
	}
	d, sources, err := diff.GetWithOperationsSourcesMap(diff.NewConfig(), s1, s2)
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	changes := checker.CheckBackwardCompatibilityUntilLevel(checker.NewConfig(checker.GetAllChecks()), d, sources, checker.ERR)
	l := checker.NewLocalizer("en")
	var out []string
	for _, c := range changes {
		out = append(out, c.GetOperation()+" "+c.GetPath()+": "+c.GetUncolorizedText(l))
	}
	return out
}

// TestNoBreakingChange fails when api/openapi.yaml breaks a client written
// against api/openapi.baseline.yaml. An intended break updates the baseline
// and api/CHANGELOG.md in the same commit.
func TestNoBreakingChange(t *testing.T) {
	base, err := os.ReadFile("openapi.baseline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range breakingChanges(t, base, rev) {
		t.Errorf("breaking change: %s", c)
	}
	if t.Failed() {
		t.Log("if intended: cp api/openapi.yaml api/openapi.baseline.yaml and add an entry to api/CHANGELOG.md ending with the new baseline's sha256")
	}
}

// TestBaselineHasChangelogEntry: the baseline in force is the one the newest
// changelog entry names, so a baseline cannot be moved without saying why.
func TestBaselineHasChangelogEntry(t *testing.T) {
	base, err := os.ReadFile("openapi.baseline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(base)
	m := regexp.MustCompile(`(?m)^baseline: sha256:([0-9a-f]{64})$`).FindSubmatch(log)
	if m == nil {
		t.Fatal("api/CHANGELOG.md names no baseline (a line `baseline: sha256:<hex>` ending the newest entry)")
	}
	if got, want := string(m[1]), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("the newest entry of api/CHANGELOG.md names baseline %s, but api/openapi.baseline.yaml is %s: add an entry saying what changed", got, want)
	}
}

// TestBreakingChangeIsCaught: the check reports a removed route, so a green
// TestNoBreakingChange means something.
func TestBreakingChangeIsCaught(t *testing.T) {
	base, err := os.ReadFile("openapi.baseline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(base)
	const route = "\n  /v1/admin/traces:\n"
	i := strings.Index(doc, route)
	if i < 0 {
		t.Fatal("the baseline has no /v1/admin/traces route to remove")
	}
	// Drop the route: everything up to the next path at the same indentation.
	j := i + len(route)
	next := regexp.MustCompile(`\n  /`).FindStringIndex(doc[j:])
	if next == nil {
		t.Fatal("cannot find the route after /v1/admin/traces")
	}
	broken := doc[:i] + doc[j+next[0]:]
	changes := breakingChanges(t, base, []byte(broken))
	found := false
	for _, c := range changes {
		if strings.Contains(c, "/v1/admin/traces") {
			found = true
		}
	}
	if !found {
		t.Fatalf("removing GET /v1/admin/traces was not reported as breaking; reported: %q", changes)
	}
}
