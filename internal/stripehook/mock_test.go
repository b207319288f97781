package stripehook

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// mockObject fetches one object as stripe-mock (Stripe's OpenAPI fixtures)
// answers it; the test is skipped when GODWIT_TEST_STRIPE_MOCK is unset.
func mockObject(t *testing.T, path string) map[string]any {
	t.Helper()
	base := os.Getenv("GODWIT_TEST_STRIPE_MOCK")
	if base == "" {
		t.Skip("stripe-mock test skipped: GODWIT_TEST_STRIPE_MOCK is not set (run scripts/stripe-mock.sh)")
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("sk_test_godwit", "")
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Skipf("stripe-mock test skipped: nothing answers at %s", base)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Stripe-Mock-Version") == "" {
		t.Fatalf("%s: %d %s", path, res.StatusCode, body)
	}
	var o map[string]any
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// The handler fed with Stripe's own object shapes (stripe-mock's fixtures
// of a PaymentIntent, a Charge and a Dispute), wrapped in events signed with
// the SDK's test helper: each is parsed to the right charge, amounts and
// status, and applied.
func TestWebhookWithStripeMockObjects(t *testing.T) {
	pi := mockObject(t, "/v1/payment_intents/pi_godwit_mock")
	ch := mockObject(t, "/v1/charges/ch_godwit_mock")
	dp := mockObject(t, "/v1/disputes/dp_godwit_mock")
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		h := newHarness(t, d, []string{secretOld}, nil)
		piID := pi["id"].(string)
		h.fake.known[piID] = true
		pi["metadata"] = map[string]any{MetadataKey: "co_mock"}
		ch["payment_intent"], ch["amount_refunded"] = piID, ch["amount"]
		dp["payment_intent"], dp["status"] = piID, "lost"
		for _, c := range []struct {
			id, typ string
			obj     map[string]any
			outcome string
		}{
			{"evt_mock_pi", TypeSucceeded, pi, OutcomeSettled},
			{"evt_mock_ch", TypeRefunded, ch, OutcomeRefundApplied},
			{"evt_mock_dp", TypeDisputeClosed, dp, OutcomeDisputeLost},
		} {
			p := eventJSON(t, c.id, c.typ, c.obj)
			st, body := h.post(p, sign(p, secretOld, time.Time{}))
			if st != 200 || body["outcome"] != c.outcome {
				t.Errorf("%s: %d %v", c.typ, st, body)
			}
			if e := h.stored(c.id); e.ChargeID != piID {
				t.Errorf("%s stored for charge %q, want %q", c.typ, e.ChargeID, piID)
			}
		}
		if n := h.fake.settleCount(piID); n != 1 {
			t.Errorf("settled %d times", n)
		}
		if h.fake.disputes[piID] == "" || h.fake.refunds[piID].Amount == 0 {
			t.Errorf("refund %v, dispute %q", h.fake.refunds[piID], h.fake.disputes[piID])
		}
	})
}
