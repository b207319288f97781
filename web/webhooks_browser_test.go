package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TestBrowserWebhooksPanel subscribes a receiver that answers 500 to its
// first request, enrols a member, and sends the member.created delivery,
// which fails. The operations view's webhooks panel then shows the
// subscription and the failed delivery as the API reports them, marked as
// failed and kept by the failures filter; its replay button queues the event
// again, the replay is delivered, the panel shows it delivered, and the
// receiver got the event with its original id. Pause and resume go through
// the API too. Both engines.
func TestBrowserWebhooksPanel(t *testing.T) {
	bctx := browser(t)
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) { testWebhooksPanel(t, bctx, engine) })
	}
}

// receipt is one request the test's receiver answered.
type receipt struct {
	webhookID, eventID string
	status             int
}

func testWebhooksPanel(t *testing.T, bctx context.Context, engine db.Engine) {
	ctx := context.Background()
	s := startServerWith(t, engine, func(c *app.Config) { c.Webhooks.AllowPrivate = true })
	shot := newShots(t)

	var (
		mu   sync.Mutex
		hits []receipt
	)
	const failFirst = 1
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &e)
		mu.Lock()
		status := http.StatusOK
		if len(hits) < failFirst {
			status = http.StatusInternalServerError
		}
		hits = append(hits, receipt{r.Header.Get("webhook-id"), e.ID, status})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(recv.Close)

	// The demo members' enrolments were written at start-up: fan them out
	// before subscribing, so the only delivery is the test's own.
	if err := s.app.Webhooks.FanoutPass(ctx); err != nil {
		t.Fatal(err)
	}
	code, sub := s.call(t, "POST", "/v1/admin/webhook-subscriptions", s.admin,
		map[string]any{"url": recv.URL, "event_types": []string{"member.created"}, "description": "browser test"})
	if code != http.StatusCreated {
		t.Fatalf("subscribe: %d %v", code, sub)
	}
	subID := sub["id"].(string)
	svc, err := s.app.Keys.Mint(auth.ScopeService, "airline", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s.call(t, "POST", "/v1/members", svc, map[string]any{"id": "hook-1", "name": "Hook", "email": "hook-1@example.test"}); code != http.StatusCreated {
		t.Fatalf("enrol: %d %v", code, body)
	}
	if n, err := s.app.Webhooks.Fanout(ctx); err != nil || n != 1 {
		t.Fatalf("fan-out created %d deliveries (%v), want 1", n, err)
	}
	if n, err := s.app.Webhooks.DeliverDue(ctx); err != nil || n != 0 {
		t.Fatalf("first delivery: %d delivered (%v), want 0: the receiver answers 500", n, err)
	}
	deliveries := func() []map[string]any {
		t.Helper()
		code, body := s.call(t, "GET", "/v1/admin/webhook-subscriptions/"+subID+"/deliveries", s.admin, nil)
		list, _ := body["deliveries"].([]any)
		if code != 200 {
			t.Fatalf("deliveries: %d %v", code, body)
		}
		out := make([]map[string]any, len(list))
		for i, d := range list {
			out[i] = d.(map[string]any)
		}
		return out
	}
	ds := deliveries()
	if len(ds) != 1 || ds[0]["state"] != "pending" || num(ds[0]["attempts"]) != 1 || num(ds[0]["response_status"]) != 500 {
		t.Fatalf("delivery log after the failed attempt: %v", ds)
	}
	failedOne := ds[0]
	delID, eventID := failedOne["id"].(string), failedOne["event_id"].(string)

	tc := tab(t, bctx)
	subRow := fmt.Sprintf(`#webhook-subs-table tr[data-sub=%q]`, subID)
	delRow := fmt.Sprintf(`#webhook-deliveries-table tr[data-delivery=%q]`, delID)
	run(t, tc, chromedp.Navigate(s.url+"/ui/ops"), ready("admin-signin"), click("#demo-admin"), ready("ops"),
		visible(subRow), visible(delRow))

	// The subscription as the API has it.
	code, apiSub := s.call(t, "GET", "/v1/admin/webhook-subscriptions/"+subID, s.admin, nil)
	if code != 200 {
		t.Fatalf("subscription: %d %v", code, apiSub)
	}
	for sel, want := range map[string]string{
		subRow + " .sub-url":   apiSub["url"].(string),
		subRow + " .sub-types": "member.created",
		subRow + " .sub-state": apiSub["state"].(string),
	} {
		if got := text(t, tc, sel); got != want {
			t.Errorf("%s shows %q, the API says %q", sel, got, want)
		}
	}
	// The failed delivery as the API has it, marked as failed.
	checkRow := func(row string, d map[string]any, wantResponse, wantState string) {
		t.Helper()
		for sel, want := range map[string]string{
			row + " .d-type":     d["event_type"].(string),
			row + " .d-event":    d["event_id"].(string),
			row + " .d-attempts": fmt.Sprint(num(d["attempts"])),
			row + " .d-response": wantResponse,
		} {
			if got := text(t, tc, sel); got != want {
				t.Errorf("%s shows %q, the API says %q", sel, got, want)
			}
		}
		if got := text(t, tc, row+" .delivery-state"); !strings.HasPrefix(got, wantState) {
			t.Errorf("%s state shows %q, want %q (API state %v)", row, got, wantState, d["state"])
		}
	}
	checkRow(delRow, failedOne, fmt.Sprint(num(failedOne["response_status"])), "failed")
	if e, _ := failedOne["last_error"].(string); e == "" || text(t, tc, delRow+" .d-error") != e {
		t.Errorf("last error shows %q, the API says %q", text(t, tc, delRow+" .d-error"), e)
	}
	if f := attr(t, tc, delRow, "data-failed"); f != "true" || !strings.Contains(attr(t, tc, delRow, "class"), "is-failed") {
		t.Errorf("the failed delivery's row is not marked failed (data-failed %q)", f)
	}
	countRows := func() int {
		return value(t, tc, chromedp.Evaluate[int](`document.querySelectorAll("#webhook-deliveries-table tbody tr").length`))
	}
	if n := countRows(); n != len(ds) {
		t.Errorf("%d deliveries listed, the API lists %d", n, len(ds))
	}
	shot.take(t, tc, "ops-webhooks-failed")

	choose := func(v string) {
		t.Helper()
		value(t, tc, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const s = document.getElementById("delivery-filter"); s.value = %q; s.dispatchEvent(new Event("change")); return true; })()`, v)))
		run(t, tc, visible(fmt.Sprintf(`#webhook-deliveries[data-shown=%q]`, v)))
	}
	// The failures filter keeps it.
	choose("failed")
	if n := countRows(); n != 1 || attr(t, tc, "#webhook-deliveries-table tbody tr", "data-delivery") != delID {
		t.Errorf("the failures filter lists %d rows, want the failed delivery alone", n)
	}

	// Replay it: the panel shows what the API answered.
	run(t, tc, click(delRow+" button[data-replay-event]"), visible("#replay-queued"))
	var replays []map[string]any
	for _, d := range deliveries() {
		if d["replay"] == true && d["event_id"] == eventID {
			replays = append(replays, d)
		}
	}
	if q := attr(t, tc, "#replay-queued", "data-queued"); len(replays) != 1 || q != "1" {
		t.Fatalf("the panel says %s queued; the API holds %d replays of %s", q, len(replays), eventID)
	}
	if n, err := s.app.Webhooks.DeliverDue(ctx); err != nil || n < 1 {
		t.Fatalf("replay delivery: %d delivered (%v)", n, err)
	}
	choose("all")
	replayRow := fmt.Sprintf(`#webhook-deliveries-table tr[data-delivery=%q]`, replays[0]["id"])
	run(t, tc, click("#webhooks-refresh"), visible(replayRow+`[data-state="delivered"]`))
	var replayed map[string]any
	for _, d := range deliveries() {
		if d["id"] == replays[0]["id"] {
			replayed = d
		}
	}
	if replayed["state"] != "delivered" {
		t.Fatalf("the API says the replay is %v", replayed)
	}
	checkRow(replayRow, replayed, "200", "delivered")
	if attr(t, tc, replayRow, "data-failed") != "false" || attr(t, tc, replayRow, "data-event") != eventID {
		t.Errorf("the replay's row is marked failed or names another event")
	}
	mu.Lock()
	var got bool
	for _, h := range hits {
		if h.status == http.StatusOK && h.webhookID == eventID && h.eventID == eventID {
			got = true
		}
	}
	mu.Unlock()
	if !got {
		t.Errorf("the receiver never accepted event %s: %v", eventID, hits)
	}
	shot.take(t, tc, "ops-webhooks-replayed")

	// Pause, then resume, from the panel.
	for _, want := range []string{"paused", "active"} {
		run(t, tc, click(subRow+" button[data-toggle]"), visible(fmt.Sprintf(`%s[data-state=%q]`, subRow, want)))
		if code, body := s.call(t, "GET", "/v1/admin/webhook-subscriptions/"+subID, s.admin, nil); code != 200 || body["state"] != want {
			t.Errorf("after the panel's toggle the API says %d %v, want state %s", code, body["state"], want)
		}
	}
}
