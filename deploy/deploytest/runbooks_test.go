package deploytest

import (
	"bufio"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"gopkg.in/yaml.v3"
)

// runbookPrefix is where the alert rules say the runbooks are published.
const runbookPrefix = "https://github.com/godwit-dev/godwit/blob/main/docs/runbooks.md#"

// TestEveryAlertHasARunbook checks that every rule in alerts.yml has a runbook_url pointing at a
// section of docs/runbooks.md that exists, and that every section there is an alert's: a renamed
// alert or section breaks the link on the page an on-call engineer opens first.
func TestEveryAlertHasARunbook(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	sections := runbookSections(t)
	linked := map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue // a recording rule
			}
			n++
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, runbookPrefix)
			switch {
			case url == "":
				t.Errorf("alert %s has no runbook_url annotation", r.Alert)
			case !ok:
				t.Errorf("alert %s: runbook_url %q does not start with %s", r.Alert, url, runbookPrefix)
			case !sections[anchor]:
				t.Errorf("alert %s: runbook_url anchor #%s is no section of docs/runbooks.md (sections: %v)", r.Alert, anchor, slices.Sorted(maps.Keys(sections)))
			}
			linked[anchor] = true
		}
	}
	if n == 0 {
		t.Fatal("no alert rules read from alerts.yml")
	}
	for s := range sections {
		if !linked[s] {
			t.Errorf("docs/runbooks.md section #%s is no alert's runbook_url: a removed or renamed alert?", s)
		}
	}
}

// runbookSections returns the anchors of the second-level headings of docs/runbooks.md.
func runbookSections(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	fenced := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if h, ok := strings.CutPrefix(line, "## "); ok && !fenced {
			out[anchor(h)] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("docs/runbooks.md has no sections")
	}
	return out
}

// anchor is the fragment GitHub gives a heading: lower case, punctuation other than '-' and '_'
// dropped, spaces turned into '-'.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"CheckoutP99Slow":                   "checkoutp99slow",
		"Backups and restore":               "backups-and-restore",
		"Reading a slow checkout (`trace`)": "reading-a-slow-checkout-trace",
		"go_test: 1.26.8":                   "go_test-1268",
	} {
		if got := anchor(in); got != want {
			t.Errorf("anchor(%q) = %q, want %q", in, got, want)
		}
	}
}
