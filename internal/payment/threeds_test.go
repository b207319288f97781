package payment_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

// TestSimulatorThreeDSecure: tok_threeDSecure2Required waits for the
// customer (through the split-mode client too); approving settles it
// succeeded, declining settles it declined with Stripe's code; OnSettled sees
// each settlement once; a second answer is a conflict, an unknown secret 404.
func TestSimulatorThreeDSecure(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		sim := payment.NewSimulator(payment.SimulatorConfig{DB: d})
		var mu sync.Mutex
		var settled []string
		sim.OnSettled(func(c payment.Charge) {
			mu.Lock()
			settled = append(settled, c.ID+":"+c.Status)
			mu.Unlock()
		})
		svc := payment.New(payment.Config{Provider: sim})
		srv := peertest.Serve(t, d, svc.InternalRoutes()...)
		c := payment.NewClient(srv.URL, peertest.HTTPClient(5*time.Second), srv.Tokens)
		eur := money.Money{Amount: 4200, Currency: "EUR"}

		waiting, err := c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_approve", Amount: eur, Token: payment.TokenThreeDSecure})
		if err != nil || waiting.Status != payment.StatusRequiresAction || waiting.ClientSecret == "" {
			t.Fatalf("Charge = %+v, %v", waiting, err)
		}
		var na struct {
			Type          string `json:"type"`
			RedirectToURL struct {
				URL string `json:"url"`
			} `json:"redirect_to_url"`
		}
		if err := json.Unmarshal(waiting.NextAction, &na); err != nil || na.Type != "redirect_to_url" {
			t.Fatalf("next_action = %s", waiting.NextAction)
		}
		u, _ := url.Parse(na.RedirectToURL.URL)
		if u.Path != "/authenticate.html" || u.Query().Get("client_secret") != waiting.ClientSecret || u.Query().Get("checkout_id") != "co_approve" {
			t.Errorf("next_action url = %s", na.RedirectToURL.URL)
		}
		// A repeated charge answers the same waiting charge.
		if again, err := c.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_approve", Amount: eur, Token: payment.TokenThreeDSecure}); err != nil || again.ID != waiting.ID || again.Status != payment.StatusRequiresAction {
			t.Fatalf("repeated Charge = %+v, %v", again, err)
		}
		if got, err := sim.Authenticate(ctx, waiting.ClientSecret, true); err != nil || got.Status != payment.StatusSucceeded || got.ID != waiting.ID {
			t.Fatalf("Authenticate(approve) = %+v, %v", got, err)
		}
		if _, err := sim.Authenticate(ctx, waiting.ClientSecret, false); errs.KindOf(err) != errs.Conflict || !errs.Is(err, payment.CodeChargeNotWaiting) {
			t.Errorf("second answer = %v, want 409 %s", err, payment.CodeChargeNotWaiting)
		}
		if got, err := c.Retrieve(ctx, waiting.ID); err != nil || got.Status != payment.StatusSucceeded || got.NextAction != nil {
			t.Errorf("Retrieve = %+v, %v", got, err)
		}
		if err := c.Cancel(ctx, waiting.ID); !errs.Is(err, payment.CodeChargeNotCancelable) {
			t.Errorf("Cancel of a succeeded charge = %v", err)
		}

		declined, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_decline", Amount: eur, Token: payment.TokenThreeDSecure})
		if err != nil {
			t.Fatal(err)
		}
		got, err := sim.Authenticate(ctx, declined.ClientSecret, false)
		if err != nil || got.Status != payment.StatusDeclined || got.DeclineCode != payment.DeclineAuthenticationFailed {
			t.Fatalf("Authenticate(decline) = %+v, %v", got, err)
		}
		// The same key now answers the decline.
		if _, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_decline", Amount: eur, Token: payment.TokenThreeDSecure}); !errs.Is(err, payment.CodePaymentDeclined) {
			t.Errorf("repeated Charge after a decline = %v", err)
		}

		abandoned, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_abandon", Amount: eur, Token: payment.TokenThreeDSecure})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // idempotent
			if err := c.Cancel(ctx, abandoned.ID); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
		}
		if _, err := sim.Authenticate(ctx, abandoned.ClientSecret, true); !errs.Is(err, payment.CodeChargeNotWaiting) {
			t.Errorf("authenticating a cancelled charge = %v", err)
		}
		if _, err := sim.Authenticate(ctx, "pi_nope_secret_nope", true); errs.KindOf(err) != errs.NotFound {
			t.Errorf("unknown secret = %v, want 404", err)
		}
		if _, err := c.Retrieve(ctx, "ch_nope"); !errs.Is(err, payment.CodeChargeNotFound) {
			t.Errorf("Retrieve(unknown) = %v", err)
		}

		// tok_visa never waits.
		visa, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_visa", Amount: eur, Token: payment.TokenVisa})
		if err != nil || visa.Status != payment.StatusSucceeded || visa.ClientSecret != "" || visa.NextAction != nil {
			t.Fatalf("visa = %+v, %v", visa, err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{waiting.ID + ":succeeded", declined.ID + ":declined", abandoned.ID + ":voided", visa.ID + ":succeeded"}
		if strings.Join(settled, " ") != strings.Join(want, " ") {
			t.Errorf("OnSettled saw %q, want %q", settled, want)
		}
	})
}
