package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestBrowserLiabilityReport opens the operations view as the demo admin,
// asks for the points liability report from 2000 to now, and checks the
// table against the API's own report (the demo members' points are the
// closing figure) and that the CSV download link offers the same report as
// RFC 4180 text.
func TestBrowserLiabilityReport(t *testing.T) {
	bctx := browser(t)
	s := startServer(t)
	shot := newShots(t)

	code, rep := s.call(t, "GET", "/v1/admin/reports/liability?from=2000-01-01T00:00:00Z", s.admin, nil)
	closing := num(rep["closing_points"])
	if code != 200 || closing <= 0 {
		t.Fatalf("report: %d %v (the demo members should hold points)", code, rep)
	}

	ctx := tab(t, bctx)
	run(t, ctx, chromedp.Navigate(s.url+"/ui/ops"), ready("admin-signin"), click("#demo-admin"), ready("ops"),
		visible("#liability-from"),
		setValue("#liability-from", "2000-01-01T00:00"),
		click("#liability-show"),
		visible("#liability-table"),
		visible("#liability-csv"),
	)
	cell := func(category, col string) string {
		return text(t, ctx, fmt.Sprintf(`#liability-table tr[data-category=%q][data-detail=""] td:nth-child(%s)`, category, col))
	}
	if got := atoi(t, cell("closing", "2")); got != closing {
		t.Errorf("closing shown as %d points, the API says %d", got, closing)
	}
	if got := atoi(t, cell("opening", "2")); got != 0 {
		t.Errorf("opening in 2000 shown as %d", got)
	}
	// Money per point_value currency: the default program values points in EUR and USD.
	if head := text(t, ctx, "#liability-table thead"); !strings.Contains(head, "EUR") || !strings.Contains(head, "USD") {
		t.Errorf("table head %q lacks the currencies", head)
	}
	if usd := cell("closing", "4"); !strings.Contains(usd, groupThousands(closing/100)) {
		t.Errorf("closing in USD shown as %q for %d points at 0.01", usd, closing)
	}
	if b := text(t, ctx, "#liability-breakage"); !strings.Contains(b, "Breakage rate") {
		t.Errorf("breakage line %q", b)
	}
	if name := attr(t, ctx, "#liability-csv", "download"); !strings.HasSuffix(name, ".csv") {
		t.Errorf("csv link downloads as %q", name)
	}
	// Download it, as a person would: click the link, read the file.
	dir := t.TempDir()
	run(t, ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	}), click("#liability-csv"))
	var csv string
	for deadline := time.Now().Add(15 * time.Second); csv == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "liability-*.csv"))
		if len(files) == 1 {
			b, _ := os.ReadFile(files[0])
			csv = string(b)
		}
	}
	lines := strings.Split(strings.TrimSuffix(csv, "\r\n"), "\r\n")
	if lines[0] != "category,detail,points,value_EUR,value_USD" || !strings.HasPrefix(lines[len(lines)-1], fmt.Sprintf("closing,,%d,", closing)) {
		t.Errorf("csv download:\n%s", csv)
	}
	shot.take(t, ctx, "ops-liability")
}

// groupThousands writes n with commas, as the page's en locale does.
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
