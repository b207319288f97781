package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowser3DSecure completes 3-D Secure checkouts through the simulated bank page:
// tok_threeDSecure2Required makes POST /v1/checkout answer 202 requires_action, the shop
// takes the customer to /authenticate.html, and back in the shop the checkout is
// confirmed. Approving shows the confirmation of an order that exists; declining shows
// the reason and keeps the cart, which then goes through with another card.
func TestBrowser3DSecure(t *testing.T) {
	bctx := browser(t)
	s := startServer(t)
	shot := newShots(t)

	toBank := func(t *testing.T, email string) (context.Context, string) {
		t.Helper()
		ctx, lineSel := guestAddsToCart(t, bctx, s)
		run(t, ctx, setValue("#email", email), setValue("#pay-token", "tok_threeDSecure2Required"), click("#place-order"),
			chromedp.WaitVisible(chromedp.CSS(`#main[data-ready="authenticate"]`)), visible("#approve"), visible("#decline"))
		if path := value(t, ctx, chromedp.Evaluate[string](`location.pathname`)); path != "/authenticate.html" {
			t.Fatalf("the bank page is at %q", path)
		}
		return ctx, lineSel
	}

	t.Run("approve", func(t *testing.T) {
		ctx, _ := toBank(t, "approve@example.test")
		// The page reads the checkout with the client secret to say how long the bank waits.
		run(t, ctx, visible("#auth-window strong"))
		if w := text(t, ctx, "#auth-window"); !strings.HasPrefix(w, "Please answer before ") {
			t.Errorf("the bank page says %q", w)
		}
		shot.take(t, ctx, "3ds-bank")
		run(t, ctx, click("#approve"), ready("shop"), visible("#confirmation"), visible("#cart-empty"))
		orderID := text(t, ctx, "#order-id")
		if code, o := s.call(t, "GET", "/v1/orders/"+orderID, s.admin, nil); code != 200 || o["id"] != orderID {
			t.Fatalf("the confirmed order %q: %d %v", orderID, code, o)
		}
		if left := value(t, ctx, chromedp.Evaluate[string](`location.pathname + location.search + (sessionStorage.getItem("godwit.3ds") || "")`)); left != "/ui/shop" {
			t.Errorf("after the confirmation the page is at, and remembers, %q; want /ui/shop and nothing pending", left)
		}
		shot.take(t, ctx, "3ds-confirmation")
	})

	t.Run("member approves and earns", func(t *testing.T) {
		ctx := tab(t, bctx)
		run(t, ctx, chromedp.Navigate(s.url+"/ui/member"), ready("member-signin"), click(`button[data-demo-member="ben"]`), ready("member"),
			chromedp.Navigate(s.url+"/ui/shop"), ready("shop"), click("button[data-add]"), visible("#points"),
			setValue("#pay-token", "tok_threeDSecure2Required"), click("#place-order"),
			chromedp.WaitVisible(chromedp.CSS(`#main[data-ready="authenticate"]`)),
			click("#approve"), ready("shop"), visible("#confirmation"))
		if earned := atoi(t, text(t, ctx, "#points-earned")); earned <= 0 {
			t.Errorf("the member's 3-D Secure order earned %d points", earned)
		}
		if code, o := s.call(t, "GET", "/v1/orders/"+text(t, ctx, "#order-id"), s.admin, nil); code != 200 {
			t.Errorf("the member's order: %d %v", code, o)
		}
	})

	t.Run("decline keeps the cart", func(t *testing.T) {
		ctx, lineSel := toBank(t, "decline@example.test")
		cartID := value(t, ctx, chromedp.Evaluate[string](`sessionStorage.getItem("godwit.cart.guest")`))
		run(t, ctx, click("#decline"), ready("shop"), visible("#checkout-result .decline-code"), visible(lineSel))
		if code := text(t, ctx, "#checkout-result .decline-code"); code != "payment_intent_authentication_failure" {
			t.Errorf("decline code shown: %q", code)
		}
		if words := text(t, ctx, "#checkout-result .problem-words"); !strings.Contains(words, "security check") {
			t.Errorf("decline shown as %q", words)
		}
		code, c := s.call(t, "GET", "/v1/carts/"+cartID, "", nil)
		items, _ := c["items"].([]any)
		if code != 200 || len(items) != 1 || c["checkout_id"] != nil {
			t.Errorf("cart after the declined authentication: %d %v", code, c)
		}
		shot.take(t, ctx, "3ds-declined")
		// The kept cart goes through with another card (a new Idempotency-Key).
		run(t, ctx, setValue("#pay-token", "tok_visa"), click("#place-order"), visible("#confirmation"))
		if code, o := s.call(t, "GET", "/v1/orders/"+text(t, ctx, "#order-id"), s.admin, nil); code != 200 {
			t.Errorf("the order after the decline: %d %v", code, o)
		}
	})
}
