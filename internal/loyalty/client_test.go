package loyalty_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx/peertest"
)

// TestHTTPClient drives the checkout's loyalty calls through loyalty.Client
// against the real internal routes and compares with the service's books.
func TestHTTPClient(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		e.member(t, "m1")
		e.fund(t, "m1", 1000)
		srv := peertest.Serve(t, d, e.svc.InternalRoutes()...)
		c := loyalty.NewClient(srv.URL, peertest.HTTPClient(5*time.Second), srv.Tokens)
		balance := func() int64 {
			t.Helper()
			m, err := e.svc.GetMember(ctx, "m1")
			if err != nil {
				t.Fatal(err)
			}
			return m.Balance
		}

		// A hold retried after a dropped connection holds once.
		srv.DropNext(1)
		hold, err := c.HoldPoints(ctx, "m1", 300, "co_1")
		if err != nil || hold == "" {
			t.Fatalf("HoldPoints = %q, %v", hold, err)
		}
		if again, err := c.HoldPoints(ctx, "m1", 300, "co_1"); err != nil || again != hold {
			t.Fatalf("repeated HoldPoints = %q, %v; want %q", again, err, hold)
		}
		if n := e.pendingHolds(t); n != 1 {
			t.Fatalf("%d pending holds, want 1", n)
		}
		if err := c.CapturePointsHold(ctx, hold); err != nil {
			t.Fatal(err)
		}
		if err := c.CapturePointsHold(ctx, hold); err != nil {
			t.Fatalf("capture again: %v", err)
		}
		if b := balance(); b != 700 {
			t.Fatalf("balance after capture = %d, want 700", b)
		}
		hold2, err := c.HoldPoints(ctx, "m1", 100, "co_2")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.VoidPointsHold(ctx, hold2); err != nil {
			t.Fatal(err)
		}

		// 422 with the shortfall, exactly as in process.
		_, err = c.HoldPoints(ctx, "m1", 5000, "co_3")
		pe := peertest.WantError(t, err, errs.Unprocessable, "insufficient_points", http.StatusUnprocessableEntity)
		_, inProc := e.svc.HoldPoints(ctx, "m1", 5000, "co_3b")
		ie, _ := errs.As(inProc)
		gotDetails, _ := json.Marshal(pe.Details)
		wantDetails, _ := json.Marshal(ie.Details)
		if diff := cmp.Diff(string(wantDetails), string(gotDetails)); diff != "" {
			t.Fatalf("details (-in process +over HTTP):\n%s", diff)
		}

		earned, err := c.EarnPurchase(ctx, "m1", "ord_1", usd(10000))
		if err != nil || earned.TotalPointsEarned <= 0 || earned.TransactionID == "" {
			t.Fatalf("EarnPurchase = %+v, %v", earned, err)
		}
		if again, err := c.EarnPurchase(ctx, "m1", "ord_1", usd(10000)); err != nil || again.TransactionID != earned.TransactionID {
			t.Fatalf("repeated EarnPurchase = %+v, %v", again, err)
		}
		before := balance()
		if err := c.RefundPoints(ctx, "m1", 300, "order-refund:ord_0"); err != nil {
			t.Fatal(err)
		}
		if err := c.RefundPoints(ctx, "m1", 300, "order-refund:ord_0"); err != nil {
			t.Fatalf("refund again: %v", err)
		}
		if b := balance(); b != before+300 {
			t.Fatalf("balance after refund = %d, want %d", b, before+300)
		}
		if earned.PendingPoints != earned.TotalPointsEarned {
			t.Fatalf("EarnPurchase pends %d of %d points", earned.PendingPoints, earned.TotalPointsEarned)
		}
		if err := c.ReversePurchase(ctx, "m1", "ord_1"); err != nil {
			t.Fatal(err)
		}
		// Refunded within the return window: the pending points are
		// cancelled, the balance is untouched.
		if b := balance(); b != before+300 {
			t.Fatalf("balance after reversal = %d, want %d", b, before+300)
		}
		if p, err := e.svc.PendingPoints(ctx, "m1"); err != nil || p != 0 {
			t.Fatalf("pending after reversal = %d, %v; want 0", p, err)
		}
		err = c.ReversePurchase(ctx, "m2", "ord_1")
		peertest.WantError(t, err, errs.Conflict, "order_member_mismatch", http.StatusConflict)
		e.verify(t)

		peertest.CheckUnreachable(t, srv, func(base string, hc *http.Client) error {
			return loyalty.NewClient(base, hc, srv.Tokens).VoidPointsHold(ctx, hold2)
		})
	})
}
