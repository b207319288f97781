package app_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/app"
)

// routingRow is one row of the split-mode routing table in docs/operations.md.
type routingRow struct {
	path     string
	segments []string
	services []string
	used     bool
}

// TestSplitRoutingTableMatchesCode keeps docs/operations.md's split-mode
// routing table true. Every route a single-service process registers is
// matched against the table as a path-routing proxy would (the row whose
// path is the longest prefix of the route, by segment; a {name} segment in
// a row matches any one segment): the row must name exactly the services
// that serve the route. A row no route reaches is stale.
func TestSplitRoutingTableMatchesCode(t *testing.T) {
	rows := readRoutingTable(t, filepath.Join("..", "..", "docs", "operations.md"))
	peers := map[string]string{}
	for _, s := range app.AllServices {
		peers[s] = "http://127.0.0.1:1"
	}
	servedBy := map[string][]string{} // route pattern → services serving it
	for _, s := range app.AllServices {
		a, err := newSplitApp(t, []string{s}, peers)
		if err != nil {
			t.Fatalf("%s alone: %v", s, err)
		}
		for _, r := range a.API.Routes() {
			if !slices.Contains(servedBy[r.Pattern], s) {
				servedBy[r.Pattern] = append(servedBy[r.Pattern], s)
			}
		}
	}
	patterns := make([]string, 0, len(servedBy))
	for p := range servedBy {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		row := matchRow(rows, p)
		if row == nil {
			t.Errorf("%s (served by %s) matches no row of the routing table", p, strings.Join(servedBy[p], ", "))
			continue
		}
		row.used = true
		got, want := slices.Sorted(slices.Values(row.services)), slices.Sorted(slices.Values(servedBy[p]))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the routing table's row %s sends it to %s; it is served by %s", p, row.path, strings.Join(got, ", "), strings.Join(want, ", "))
		}
	}
	for _, r := range rows {
		if !r.used {
			t.Errorf("routing table row %s matches no route: remove or correct it", r.path)
		}
	}
}

// matchRow returns the row with the longest path that is a segment-wise
// prefix of the route pattern, preferring literal segments on a tie.
func matchRow(rows []*routingRow, pattern string) *routingRow {
	route := strings.Split(strings.Trim(pattern, "/"), "/")
	var best *routingRow
	bestLen, bestLiterals := -1, -1
	for _, r := range rows {
		if len(r.segments) > len(route) {
			continue
		}
		ok, literals := true, 0
		for i, seg := range r.segments {
			switch {
			case strings.HasPrefix(seg, "{"):
				// matches any one segment
			case seg == route[i]:
				literals++
			default:
				ok = false
			}
		}
		if ok && (len(r.segments) > bestLen || len(r.segments) == bestLen && literals > bestLiterals) {
			best, bestLen, bestLiterals = r, len(r.segments), literals
		}
	}
	return best
}

// readRoutingTable reads the table between <!-- split-routes:begin --> and
// <!-- split-routes:end -->: | `path` | services (notes) | …
func readRoutingTable(t *testing.T, file string) []*routingRow {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- split-routes:begin -->")
	table, _, ok2 := strings.Cut(rest, "<!-- split-routes:end -->")
	if !ok || !ok2 {
		t.Fatalf("%s: no split-mode routing table (between <!-- split-routes:begin --> and <!-- split-routes:end -->)", file)
	}
	var rows []*routingRow
	for line := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 2 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue
		}
		path := strings.Trim(strings.TrimSpace(cells[0]), "`")
		who, _, _ := strings.Cut(cells[1], "(")
		who = strings.TrimSpace(who)
		var services []string
		if who == "every process" {
			services = slices.Clone(app.AllServices)
		} else {
			for s := range strings.SplitSeq(who, ",") {
				s = strings.Trim(strings.TrimSpace(s), "`")
				if !slices.Contains(app.AllServices, s) {
					t.Errorf("routing table row %s: %q is not a service (nor \"every process\")", path, s)
				}
				services = append(services, s)
			}
		}
		rows = append(rows, &routingRow{path: path, segments: strings.Split(strings.Trim(path, "/"), "/"), services: services})
	}
	if len(rows) == 0 {
		t.Fatalf("%s: the routing table has no rows", file)
	}
	return rows
}
