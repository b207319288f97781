package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/godwit-dev/godwit/api/apitest"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/web"
)

// server is the real Godwit process in-process: the API and the UI mounted
// side by side exactly as internal/app serves them.
type server struct {
	url   string
	app   *app.App
	admin string
	tel   *telemetry.Telemetry
}

func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, db.SQLite, nil)
}

// startServerWith is startServer on engine, with adjust changing the app's
// configuration first (nil: none).
func startServerWith(t *testing.T, engine db.Engine, adjust func(*app.Config)) *server {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{Getenv: func(string) string { return "" }}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := app.Config{
		DSN: dbtest.DSN(t, engine), DataDir: t.TempDir(), Secret: []byte("0123456789abcdef0123456789abcdef"),
		Telemetry: tel, Demo: true,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ui := web.Handler(web.Config{
		Demo:            true,
		MintMemberToken: func(id string) (string, error) { return a.Keys.Mint(auth.ScopeMember, id, time.Hour) },
		MintAdminToken:  func() (string, error) { return a.Keys.Mint(auth.ScopeAdmin, "demo-ui", time.Hour) },
	})
	mux := http.NewServeMux()
	for _, p := range []string{"/v1/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, a.Handler)
	}
	mux.Handle("/", ui)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	admin, err := a.Keys.Mint(auth.ScopeAdmin, "browser-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &server{url: srv.URL, app: a, admin: admin, tel: tel}
}

// call is a plain API call from the test itself (setup and checks).
func (s *server) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

func findChromium() string {
	if p := os.Getenv("GODWIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "/usr/lib/chromium/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts Debian's Chromium headless, or skips the test when there is
// none or it cannot start.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("browser tests skipped: Chromium was not found (apt-get install -y chromium, or set GODWIT_CHROMIUM)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Skipf("browser tests skipped: Chromium at %s could not be started: %v", path, err)
	}
	return bctx
}

// tab opens a fresh tab (its own sessionStorage) and fails the test on any
// uncaught JavaScript exception in it.
func tab(t *testing.T, bctx context.Context) context.Context {
	t.Helper()
	var mu sync.Mutex
	var problems []string
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			mu.Lock()
			problems = append(problems, msg)
			mu.Unlock()
		}
	}))
	t.Cleanup(cancel)
	// The first run opens the tab; its context then bounds the tab's life, so
	// it gets no timeout. Later steps each get one (see step).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("uncaught JavaScript exception: %s", p)
		}
	})
	return ctx
}

type shots struct {
	dir string
}

func newShots(t *testing.T) *shots {
	dir := os.Getenv("GODWIT_UI_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "godwit-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	return &shots{dir: dir}
}

// take writes name-desktop.png (1280×800) and name-phone.png (390×844) of the
// whole page, then restores the desktop viewport.
func (s *shots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, v := range []struct {
		suffix string
		w, h   int64
		opts   []chromedp.EmulateViewportOption
	}{{"desktop", 1280, 800, nil}, {"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(v.w, v.h, v.opts...)); err != nil {
			t.Fatalf("viewport %s: %v", v.suffix, err)
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, name+"-"+v.suffix+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
}

// stepTimeout bounds one browser step, so a missing element fails the test
// with the page's text instead of hanging until the test binary's timeout.
const stepTimeout = 20 * time.Second

func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("main").innerText`))
	return s
}

// run runs browser steps and fails with the page's text when one fails.
func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("browser: %v\npage text: %.1500s", err, pageText(ctx))
	}
}

// value runs one step that returns a value.
func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %v\npage text: %.1500s", err, pageText(ctx))
	}
	return v
}

func ready(page string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`#main[data-ready="` + page + `"]`))
}

func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

func setValue(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.SetValue(chromedp.CSS(sel), v)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(value(t, ctx, chromedp.Text(chromedp.CSS(sel))))
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return value(t, ctx, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.NewReplacer(",", "", "+", "", "−", "-", " ", "").Replace(strings.TrimSpace(s)), 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// TestBrowser drives the UI in Chromium against the real server: guest and
// member purchases, a declined card, a redemption shortfall and the waterfall of
// a slowed checkout, with screenshots of every page.
func TestBrowser(t *testing.T) {
	bctx := browser(t)
	s := startServer(t)
	shot := newShots(t)

	_, products := s.call(t, "GET", "/v1/products", "", nil)
	list, _ := products["products"].([]any)
	var product map[string]any
	for _, p := range list {
		if p := p.(map[string]any); num(p["available"]) > 10 {
			product = p
			break
		}
	}
	if product == nil {
		t.Fatalf("no demo product with stock: %v", products)
	}
	pid := product["id"].(string)
	addSel := fmt.Sprintf(`button[data-add=%q]`, pid)
	lineSel := fmt.Sprintf(`#cart-table tr[data-line=%q]`, pid)

	t.Run("guest buys", func(t *testing.T) {
		ctx := tab(t, bctx)
		run(t, ctx, chromedp.Navigate(s.url+"/"), ready("shop"), click(addSel), visible(lineSel))
		total := text(t, ctx, "#cart-total")
		if !strings.ContainsAny(total, "0123456789") || strings.Contains(total, "NaN") {
			t.Errorf("cart total %q is not a formatted amount", total)
		}
		shot.take(t, ctx, "shop-cart")
		run(t, ctx,
			setValue("#email", "guest@example.test"),
			setValue("#pay-token", "tok_visa"),
			click("#place-order"),
			visible("#confirmation"),
			visible("#cart-empty"),
		)
		orderID := text(t, ctx, "#order-id")
		code, o := s.call(t, "GET", "/v1/orders/"+orderID, s.admin, nil)
		if code != 200 || o["id"] != orderID {
			t.Fatalf("the confirmed order %q: %d %v", orderID, code, o)
		}
		if href := attr(t, ctx, `#confirmation a[href^="/ui/trace/"]`, "href"); len(href) != len("/ui/trace/")+32 {
			t.Errorf("trace link %q", href)
		}
		shot.take(t, ctx, "shop-confirmation")
	})

	t.Run("declined card keeps the cart", func(t *testing.T) {
		ctx := tab(t, bctx)
		run(t, ctx,
			chromedp.Navigate(s.url+"/ui/shop"), ready("shop"),
			click(addSel), visible("#email"),
			setValue("#email", "guest@example.test"),
			setValue("#pay-token", "tok_chargeDeclinedInsufficientFunds"),
			click("#place-order"),
			visible("#checkout-result .decline-code"),
			visible(lineSel),
		)
		words := text(t, ctx, "#checkout-result .problem-words")
		declineCode := text(t, ctx, "#checkout-result .decline-code")
		if declineCode != "insufficient_funds" || !strings.Contains(strings.ToLower(words), "insufficient funds") {
			t.Errorf("decline shown as %q / %q", words, declineCode)
		}
		cartID := value(t, ctx, chromedp.Evaluate[string](`sessionStorage.getItem("godwit.cart.guest")`))
		code, c := s.call(t, "GET", "/v1/carts/"+cartID, "", nil)
		items, _ := c["items"].([]any)
		if code != 200 || len(items) != 1 || c["checkout_id"] != nil {
			t.Errorf("cart after the decline: %d %v", code, c)
		}
		shot.take(t, ctx, "shop-declined")
		// The same cart then goes through with a good card.
		run(t, ctx, setValue("#pay-token", "tok_visa"), click("#place-order"), visible("#confirmation"))
	})

	t.Run("member pays with points and sees the earning", func(t *testing.T) {
		ctx := tab(t, bctx)
		run(t, ctx, chromedp.Navigate(s.url+"/ui/member"), ready("member-signin"))
		shot.take(t, ctx, "member-signin")
		run(t, ctx, click(`button[data-demo-member="ava"]`), ready("member"))
		before := atoi(t, text(t, ctx, "#balance"))
		run(t, ctx,
			chromedp.Navigate(s.url+"/ui/shop"), ready("shop"),
			click(addSel), visible("#points"),
			setValue("#points", "1000"),
			click("#place-order"),
			visible("#confirmation"),
		)
		earned := atoi(t, text(t, ctx, "#points-earned"))
		if redeemed := atoi(t, text(t, ctx, "#points-redeemed")); redeemed != 1000 || earned <= 0 {
			t.Fatalf("confirmation shows %d points used, %d earned", redeemed, earned)
		}
		shot.take(t, ctx, "shop-member-confirmation")
		run(t, ctx, chromedp.Navigate(s.url+"/ui/member"), ready("member"), visible("#statement-table"))
		row := func(n int, name string) string {
			return attr(t, ctx, fmt.Sprintf("#statement-table tbody tr:nth-child(%d)", n), name)
		}
		// The purchase's points pend for its return window: listed above
		// the movements, in no balance yet.
		if row(1, "data-type") != "redeem" || atoi(t, row(1, "data-points")) != -1000 {
			t.Errorf("statement starts %s %s; want redeem -1000", row(1, "data-type"), row(1, "data-points"))
		}
		run(t, ctx, visible("#statement-pending li"), visible("#pending-points"), visible("#expiring-list li"))
		if p := attr(t, ctx, "#statement-pending li:last-child", "data-points"); atoi(t, p) != earned {
			t.Errorf("statement's pending list ends with %s points, want the purchase's %d", p, earned)
		}
		if p := attr(t, ctx, "#pending-points", "data-points"); atoi(t, p) != earned {
			t.Errorf("expiring card shows %s points pending, want %d", p, earned)
		}
		if !strings.Contains(text(t, ctx, "#pending-points"), "points pending") {
			t.Errorf("pending line %q", text(t, ctx, "#pending-points"))
		}
		// The expiring card lists the member's lots, soonest first.
		lots := value(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#expiring-list li")].map((li) => li.dataset.expires)`))
		if len(lots) == 0 || !slices.IsSorted(lots) {
			t.Errorf("expiring lots %v, want some, soonest first", lots)
		}
		if after := atoi(t, text(t, ctx, "#balance")); after != before-1000 {
			t.Errorf("balance %d → %d after using 1000 (the %d earned pend)", before, after, earned)
		}
		shot.take(t, ctx, "member-portal")
	})

	t.Run("redeem with too few points shows the shortfall", func(t *testing.T) {
		code, opts := s.call(t, "GET", "/v1/redemption-options", s.admin, nil)
		if code == http.StatusNotFound {
			t.Skip("redemptions are not on this server yet: GET /v1/redemption-options answered 404 (Loyalty II, issue 4)")
		}
		options, _ := opts["options"].([]any)
		if code != 200 || len(options) == 0 {
			t.Fatalf("redemption options: %d %v", code, opts)
		}
		// chen has no points, so the dearest option is out of reach.
		var dearest map[string]any
		for _, o := range options {
			if o := o.(map[string]any); dearest == nil || num(o["points"]) > num(dearest["points"]) {
				dearest = o
			}
		}
		ctx := tab(t, bctx)
		run(t, ctx,
			chromedp.Navigate(s.url+"/ui/member"), ready("member-signin"),
			click(`button[data-demo-member="chen"]`), ready("member"),
			visible("#redeem-table"),
			click(fmt.Sprintf(`tr[data-option=%q] button`, dearest["id"])),
			visible("#redeem-result .points-short"),
		)
		balance := atoi(t, text(t, ctx, "#balance"))
		short := text(t, ctx, "#redeem-result .points-short")
		words := text(t, ctx, "#redeem-result .problem-words")
		if n := atoi(t, short); n <= 0 || n > num(dearest["points"])-balance || !strings.Contains(words, short) {
			t.Errorf("shortfall shown as %q (%q); the option costs %v, balance %d", short, words, dearest["points"], balance)
		}
		if after := atoi(t, text(t, ctx, "#balance")); after != balance {
			t.Errorf("balance changed from %d to %d", balance, after)
		}
		shot.take(t, ctx, "member-redeem-short")
	})

	t.Run("waterfall of a slowed checkout marks the payment span longest", func(t *testing.T) {
		slow := map[string]any{"latency_ms": 700, "decline_rate_percent": 0, "decline_code": "generic_decline"}
		if code, body := s.call(t, "PUT", "/v1/admin/faults/payment", s.admin, slow); code != 200 {
			t.Fatalf("set payment latency: %d %v", code, body)
		}
		t.Cleanup(func() {
			s.call(t, "PUT", "/v1/admin/faults/payment", s.admin, map[string]any{"latency_ms": 0, "decline_rate_percent": 0, "decline_code": "generic_decline"})
		})
		ctx := tab(t, bctx)
		run(t, ctx,
			chromedp.Navigate(s.url+"/ui/shop"), ready("shop"),
			click(addSel), visible("#email"),
			setValue("#email", "slow@example.test"),
			click("#place-order"),
			visible("#confirmation"),
			click(`#confirmation a[href^="/ui/trace/"]`),
			ready("admin-signin"),
			click("#demo-admin"),
			ready("trace"),
		)
		if longest := attr(t, ctx, ".wf-row.is-longest", "data-span"); !strings.HasPrefix(longest, "payment.") {
			t.Errorf("the span marked longest is %q, want a payment span", longest)
		}
		if mark := text(t, ctx, `.wf-row.is-longest [data-mark="longest"]`); !strings.Contains(mark, "longest") {
			t.Errorf("longest mark reads %q", mark)
		}
		// Selecting the span shows its attributes.
		run(t, ctx, click(".wf-row.is-longest"), visible(".wf-detail table.attrs"))
		if attrs := text(t, ctx, ".wf-detail table.attrs"); !strings.Contains(attrs, "payment.") {
			t.Errorf("the payment span's attributes: %q", attrs)
		}
		shot.take(t, ctx, "trace-waterfall")

		// The operations view lists it first among successful traces (slowest first).
		run(t, ctx, chromedp.Navigate(s.url+"/ui/ops"), ready("ops"), visible("#traces-table"), visible("#charts svg"))
		first := value(t, ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("#traces-table tbody tr")].find(r => !r.querySelector(".tag.error")).dataset.root`))
		if first != "POST /v1/checkout" {
			t.Errorf("the slowest successful trace listed first is %q, want the slowed checkout", first)
		}
		shot.take(t, ctx, "ops")
	})

	t.Run("a failed checkout's waterfall marks the failing span", func(t *testing.T) {
		ctx := tab(t, bctx)
		run(t, ctx,
			chromedp.Navigate(s.url+"/ui/shop"), ready("shop"),
			click(addSel), visible("#email"),
			setValue("#email", "lost@example.test"),
			setValue("#pay-token", "tok_chargeDeclinedLostCard"),
			click("#place-order"),
			visible("#checkout-result .decline-code"),
		)
		if words := text(t, ctx, "#checkout-result .problem-words"); !strings.Contains(words, "lost") {
			t.Errorf("lost card shown as %q", words)
		}
		traceHref := attr(t, ctx, `#checkout-result a[href^="/ui/trace/"]`, "href")
		run(t, ctx, chromedp.Navigate(s.url+traceHref), ready("admin-signin"), click("#demo-admin"), ready("trace"))
		if failed := attr(t, ctx, `.wf-row.is-error:has([data-mark="failed"])`, "data-span"); !strings.HasPrefix(failed, "payment.") {
			t.Errorf("the span marked as the failure is %q, want a payment span", failed)
		}
		shot.take(t, ctx, "trace-failed")
	})
}

// TestBrowserDemoAdminOff runs the whole process's handler in demo mode without
// demo admin sign-in (serve's default): member sign-in works, and the admin
// pages say why there is no demo admin button instead of offering one that
// would fail.
func TestBrowserDemoAdminOff(t *testing.T) {
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

	tc := tab(t, bctx)
	run(t, tc, chromedp.Navigate(srv.URL+"/ui/ops"), ready("admin-signin"), visible("#demo-admin-off"))
	if msg := text(t, tc, "#demo-admin-off"); !strings.Contains(msg, "--demo-admin") {
		t.Errorf("the demo admin notice reads %q", msg)
	}
	if n := value(t, tc, chromedp.Evaluate[int](`document.querySelectorAll("#demo-admin").length`)); n != 0 {
		t.Errorf("a demo admin button is offered although demo admin sign-in is off")
	}
	run(t, tc, chromedp.Navigate(srv.URL+"/ui/member"), click(`button[data-demo-member="ava"]`), ready("member"))
}
