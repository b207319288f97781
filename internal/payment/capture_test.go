package payment_test

import (
	"context"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestSimulatorManualCapture: a manual-capture charge is authorized; a
// capture of less succeeds once for that amount however many race for it, a
// capture for another amount or above the authorisation is refused, a void
// releases an authorisation, and a 3-D Secure charge approved in manual mode
// is authorized, not captured.
func TestSimulatorManualCapture(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		sim := payment.NewSimulator(payment.SimulatorConfig{DB: d})
		svc := payment.New(payment.Config{Provider: sim})
		eur := func(a int64) money.Money { return money.Money{Amount: a, Currency: "EUR"} }

		ch, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_manual", Amount: eur(5000), Token: payment.TokenVisa, CaptureManual: true})
		if err != nil || ch.Status != payment.StatusAuthorized {
			t.Fatalf("Charge = %+v, %v; want authorized", ch, err)
		}
		if _, err := svc.Capture(ctx, ch.ID, eur(5001), "k"); errs.CodeOf(err) != "capture_exceeds_authorization" {
			t.Errorf("capture above the authorisation: %v", err)
		}
		if _, err := svc.Refund(ctx, ch.ID, eur(100), "rf"); err == nil {
			t.Error("refund of an uncaptured authorisation: no error")
		}
		var wg sync.WaitGroup
		results := make([]payment.Charge, 10)
		errsOut := make([]error, 10)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errsOut[i] = svc.Capture(ctx, ch.ID, eur(3500), "capture/co_manual")
			}()
		}
		wg.Wait()
		for i := range results {
			if errsOut[i] != nil || results[i].Status != payment.StatusSucceeded || results[i].Amount != eur(3500) {
				t.Errorf("capture %d = %+v, %v", i, results[i], errsOut[i])
			}
		}
		if _, err := svc.Capture(ctx, ch.ID, eur(4000), "other"); errs.CodeOf(err) != payment.CodeChargeNotCapturable {
			t.Errorf("capture for another amount: %v", err)
		}
		if got, err := svc.Retrieve(ctx, ch.ID); err != nil || got.Amount != eur(3500) || got.Status != payment.StatusSucceeded {
			t.Errorf("after capture: %+v, %v", got, err)
		}

		other, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_void", Amount: eur(700), Token: payment.TokenVisa, CaptureManual: true})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := svc.Void(ctx, other.ID); err != nil || v.Status != payment.StatusVoided {
			t.Errorf("void of an authorisation = %+v, %v", v, err)
		}
		if _, err := svc.Capture(ctx, other.ID, eur(700), "k"); errs.CodeOf(err) != payment.CodeChargeNotCapturable {
			t.Errorf("capture of a voided authorisation: %v", err)
		}

		waiting, err := svc.Charge(ctx, payment.ChargeRequest{IdempotencyKey: "co_3ds", Amount: eur(900), Token: payment.TokenThreeDSecure, CaptureManual: true})
		if err != nil || waiting.Status != payment.StatusRequiresAction {
			t.Fatalf("3DS charge = %+v, %v", waiting, err)
		}
		if got, err := sim.Authenticate(ctx, waiting.ClientSecret, true); err != nil || got.Status != payment.StatusAuthorized {
			t.Errorf("approved manual 3DS = %+v, %v; want authorized", got, err)
		}
	})
}
