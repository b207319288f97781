package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/api/apitest"
)

// guestAddsToCart opens the shop as a guest in a fresh tab and puts one unit of a
// product with stock in the cart; it returns the tab and the selector of the cart line.
func guestAddsToCart(t *testing.T, bctx context.Context, s *server) (context.Context, string) {
	t.Helper()
	_, products := s.call(t, "GET", "/v1/products", "", nil)
	list, _ := products["products"].([]any)
	var pid string
	for _, p := range list {
		if p := p.(map[string]any); num(p["available"]) > 10 {
			pid = p["id"].(string)
			break
		}
	}
	if pid == "" {
		t.Fatalf("no demo product with stock: %v", products)
	}
	ctx := tab(t, bctx)
	lineSel := fmt.Sprintf(`#cart-table tr[data-line=%q]`, pid)
	run(t, ctx, chromedp.Navigate(s.url+"/ui/shop"), ready("shop"), click(fmt.Sprintf(`button[data-add=%q]`, pid)), visible(lineSel), visible("#email"))
	return ctx, lineSel
}

// TestBrowserLinkedTraces: a checkout's waterfall shows, beside it, the trace of its own
// that completed it asynchronously (recorded here as the webhook records it: a
// payment.webhook.process span in a new trace with a span link to the checkout), and
// that trace's view names the checkout it continues.
func TestBrowserLinkedTraces(t *testing.T) {
	bctx := browser(t)
	s := startServer(t)
	shot := newShots(t)

	ctx, _ := guestAddsToCart(t, bctx, s)
	run(t, ctx, setValue("#email", "linked@example.test"), setValue("#pay-token", "tok_visa"), click("#place-order"), visible("#confirmation"))
	checkoutTrace := strings.TrimPrefix(attr(t, ctx, `#confirmation a[href^="/ui/trace/"]`, "href"), "/ui/trace/")

	// The checkout's checkout.process span, the one the webhook links to.
	code, tv := s.call(t, "GET", "/v1/admin/traces/"+checkoutTrace, s.admin, nil)
	spans, _ := tv["spans"].([]any)
	var target trace.SpanContext
	for _, sp := range spans {
		if sp := sp.(map[string]any); sp["name"] == "checkout.process" {
			tid, _ := trace.TraceIDFromHex(sp["trace_id"].(string))
			sid, _ := trace.SpanIDFromHex(sp["span_id"].(string))
			target = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
		}
	}
	if code != 200 || !target.IsValid() {
		t.Fatalf("the checkout's trace: %d, no checkout.process span in %v", code, tv)
	}
	tr := s.tel.TracerProvider.Tracer("browser-test")
	start := time.Now().Add(time.Second)
	wctx, hook := tr.Start(context.Background(), "POST /v1/webhooks/stripe", trace.WithNewRoot(), trace.WithTimestamp(start))
	_, process := tr.Start(wctx, "payment.webhook.process", trace.WithTimestamp(start.Add(2*time.Millisecond)),
		trace.WithLinks(trace.Link{SpanContext: target}))
	process.End(trace.WithTimestamp(start.Add(40 * time.Millisecond)))
	hook.End(trace.WithTimestamp(start.Add(45 * time.Millisecond)))
	webhookTrace := process.SpanContext().TraceID().String()

	// Both traces' answers, linked_from and links_to included, are what api/openapi.yaml says.
	checked := apitest.Server(t, s.app.Handler)
	for _, id := range []string{checkoutTrace, webhookTrace} {
		req, _ := http.NewRequest("GET", checked.URL+"/v1/admin/traces/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+s.admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET /v1/admin/traces/%s = %d", id, res.StatusCode)
		}
	}

	run(t, ctx, chromedp.Navigate(s.url+"/ui/trace/"+checkoutTrace), ready("admin-signin"), click("#demo-admin"), ready("trace"),
		visible("#linked-from a.wf-linked"))
	row := `#linked-from a.wf-linked[data-span="payment.webhook.process"]`
	if got := attr(t, ctx, row, "data-trace"); got != webhookTrace {
		t.Errorf("the linked row names trace %q, want the webhook's %q", got, webhookTrace)
	}
	if label := attr(t, ctx, row, "aria-label"); !strings.Contains(label, "in POST /v1/webhooks/stripe") || !strings.Contains(label, "after this trace began") || !strings.Contains(label, "checkout.process") {
		t.Errorf("the linked row's label %q does not say when it ran and what it links to", label)
	}
	// Beside the checkout: the webhook's bar starts after this trace's bar ends.
	here := value(t, ctx, chromedp.Evaluate[float64](`parseFloat(document.querySelector("#linked-from .wf-here .wf-bar").style.width)`))
	left := value(t, ctx, chromedp.Evaluate[float64](`parseFloat(document.querySelector("#linked-from a.wf-linked .wf-bar").style.left)`))
	if !(left > here) {
		t.Errorf("the webhook's bar starts at %.1f%%, inside the checkout's %.1f%%", left, here)
	}
	shot.take(t, ctx, "trace-linked-from")

	run(t, ctx, click(row), ready("trace"), visible("#links-to"))
	if got := attr(t, ctx, `#links-to li`, "data-trace"); got != checkoutTrace {
		t.Errorf("the webhook's trace continues %q, want the checkout %q", got, checkoutTrace)
	}
	if txt := text(t, ctx, "#links-to li"); !strings.Contains(txt, "payment.webhook.process links to checkout.process") || !strings.Contains(txt, "POST /v1/checkout") {
		t.Errorf("the webhook's trace says it continues %q", txt)
	}
}
