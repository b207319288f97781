package web_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"gopkg.in/yaml.v3"

	"github.com/godwit-dev/godwit/api"
	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// operation finds an operation of the OpenAPI document by its operationId and returns its
// method, path, summary and (first) tag.
func operation(t *testing.T, id string) (method, path, summary, tag string) {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"` // methods, and a path's parameters
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for p, items := range doc.Paths {
		for m, node := range items {
			var op struct {
				OperationID string   `yaml:"operationId"`
				Summary     string   `yaml:"summary"`
				Tags        []string `yaml:"tags"`
			}
			if node.Kind != yaml.MappingNode {
				continue
			}
			if err := node.Decode(&op); err != nil {
				t.Fatal(err)
			}
			if op.OperationID == id && len(op.Tags) > 0 {
				return strings.ToUpper(m), p, op.Summary, op.Tags[0]
			}
		}
	}
	t.Fatalf("api/openapi.yaml has no tagged operation %q", id)
	return "", "", "", ""
}

// write saves one screenshot as name.png.
func (s *shots) write(t *testing.T, name string, png []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cspTab opens a tab that records, besides failing the test on uncaught exceptions as tab
// does, every message the browser logs about its content security policy.
func cspTab(t *testing.T, bctx context.Context) (context.Context, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var violations, exceptions []string
	record := func(list *[]string, msg string) {
		mu.Lock()
		*list = append(*list, msg)
		mu.Unlock()
	}
	isCSP := func(s string) bool {
		return strings.Contains(s, "Content Security Policy") || strings.Contains(s, "Refused to")
	}
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *log.EventEntryAdded:
			if e.Entry != nil && isCSP(e.Entry.Text) {
				record(&violations, e.Entry.Text)
			}
		case *runtime.EventConsoleAPICalled:
			for _, a := range e.Args {
				if s := string(a.Value); isCSP(s) || isCSP(a.Description) {
					record(&violations, s+a.Description)
				}
			}
		case *runtime.EventExceptionThrown:
			if e.ExceptionDetails != nil {
				msg := e.ExceptionDetails.Text
				if e.ExceptionDetails.Exception != nil {
					msg += " " + e.ExceptionDetails.Exception.Description
				}
				record(&exceptions, msg)
			}
		}
	}))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range exceptions {
			t.Errorf("uncaught JavaScript exception: %s", p)
		}
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), violations...)
	}
}

// TestBrowserDocs follows the UI footer's link to the API reference, served by the whole
// process (UI and API, held to the document by apitest), and finds the checkout operation
// drawn from /v1/openapi.yaml, with no content security policy violation on the way.
func TestBrowserDocs(t *testing.T) {
	bctx := browser(t)
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	a, err := app.New(ctx, app.Config{
		DSN: dbtest.DSN(t, db.SQLite), DataDir: t.TempDir(), Secret: []byte("0123456789abcdef0123456789abcdef"),
		Telemetry: tel, Demo: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	srv := apitest.Server(t, a.Handler)
	t.Cleanup(srv.Close)
	method, path, summary, tag := operation(t, "checkout")
	shot := newShots(t)

	tc, violations := cspTab(t, bctx)
	run(t, tc, chromedp.Navigate(srv.URL+"/ui/shop"), ready("shop"))
	run(t, tc, click(`footer a[href="/docs"]`))
	// Drawing the whole document (73 operations) takes a few seconds, many more on a
	// loaded machine: this one step gets longer than stepTimeout.
	wctx, cancel := context.WithTimeout(tc, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, visible(`#api-reference[data-ready="docs"]`)); err != nil {
		t.Fatalf("the reference was not drawn: %v\nCSP messages: %q", err, violations())
	}
	if u := value(t, tc, chromedp.Location()); u != srv.URL+"/docs" {
		t.Fatalf("the footer's API reference link led to %s", u)
	}
	// The reference is a long page: the shots are its first screen and the opened checkout
	// operation, not the whole page.
	shot.write(t, "docs-desktop", value(t, tc, chromedp.CaptureScreenshot()))
	// Swagger UI names an operation's block operations-<tag>-<operationId>.
	op := "#operations-" + tag + "-checkout"
	run(t, tc, visible(op))
	if got := text(t, tc, op+" .opblock-summary-method"); got != method {
		t.Errorf("the checkout operation's method reads %q, want %q", got, method)
	}
	if got := text(t, tc, op+" .opblock-summary-path"); !strings.Contains(strings.ReplaceAll(got, "\u200b", ""), path) {
		t.Errorf("the checkout operation's path reads %q, want %q", got, path)
	}
	if got := text(t, tc, op+" .opblock-summary-description"); got != summary {
		t.Errorf("the checkout operation's summary reads %q, want %q", got, summary)
	}
	// Opened, it shows its request body and the Idempotency-Key header it requires.
	run(t, tc, click(op+" .opblock-summary-control"), visible(op+" .opblock-body .parameters"))
	if params := text(t, tc, op+" .opblock-body .parameters"); !strings.Contains(params, "Idempotency-Key") {
		t.Errorf("the opened checkout operation's parameters do not list Idempotency-Key: %.500s", params)
	}
	// Its problem codes (x-problem-codes) are shown with it.
	if ext := text(t, tc, op+" .opblock-body"); !strings.Contains(ext, "x-problem-codes") || !strings.Contains(ext, "payment_declined") {
		t.Errorf("the opened checkout operation does not show its x-problem-codes (payment_declined): %.500s", ext)
	}
	shot.write(t, "docs-checkout", value(t, tc, chromedp.Screenshot(chromedp.CSS(op))))
	if v := violations(); len(v) != 0 {
		t.Errorf("the API reference broke the content security policy:\n%s", strings.Join(v, "\n"))
	}

	// The watch would see a violation: an image from another host is refused.
	value(t, tc, chromedp.Evaluate[bool](`(new Image().src = "https://example.invalid/x.png", true)`))
	for wait := 0; len(violations()) == 0 && wait < 50; wait++ {
		time.Sleep(100 * time.Millisecond)
	}
	if len(violations()) == 0 {
		t.Error("an image from another host raised no CSP message: the watch cannot see violations")
	}
}
