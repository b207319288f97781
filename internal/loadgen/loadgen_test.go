package loadgen_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loadgen"
	"github.com/godwit-dev/godwit/internal/platform/testlog"
)

// baseConfig is a small, fast configuration against f.
func baseConfig(f *fake) loadgen.Config {
	return loadgen.Config{
		Target:       f.srv.URL,
		AdminToken:   adminToken,
		ServiceToken: serviceToken,
		MemberToken:  memberTokenFor,
		MemberIDs:    []string{"m1", "m2", "m3", "m4"},
		VUs:          4,
		Seed:         7,
		Version:      "test",
	}
}

func run(t *testing.T, cfg loadgen.Config) *loadgen.Report {
	t.Helper()
	rep, err := loadgen.Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func opStats(t *testing.T, rep *loadgen.Report, name string) loadgen.OpStats {
	t.Helper()
	for _, s := range rep.Ops {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("report has no row for %s", name)
	return loadgen.OpStats{}
}

// samples collects Observe callbacks.
type samples struct {
	mu  sync.Mutex
	all []loadgen.Sample
}

func (s *samples) add(x loadgen.Sample) {
	s.mu.Lock()
	s.all = append(s.all, x)
	s.mu.Unlock()
}

func (s *samples) list() []loadgen.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

func TestMixProportions(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.Requests = 1000
	rep := run(t, cfg)

	if rep.Total.Count != 1000 {
		t.Fatalf("total count %d, want exactly 1000", rep.Total.Count)
	}
	if rep.Total.Errors != 0 {
		t.Fatalf("failures against a healthy server: %+v", rep.Total.FailuresByCode)
	}
	mix := loadgen.DefaultMix()
	for _, op := range loadgen.Operations() {
		got := float64(opStats(t, rep, op).Count) / 1000
		want := float64(mix[op]) / 100
		if got < want-0.05 || got > want+0.05 {
			t.Errorf("%s share %.3f, want %.2f ± 0.05", op, got, want)
		}
	}
	// Every operation reached the server as the right requests.
	f.snapshot(func(f *fake) {
		if got, want := int64(f.hits["POST /v1/checkout"]), opStats(t, rep, loadgen.OpCheckout).Count; got != want {
			t.Errorf("server saw %d checkouts, report counts %d", got, want)
		}
		if got, want := int64(f.hits["POST /v1/members/{id}/activities"]), opStats(t, rep, loadgen.OpEarn).Count; got != want {
			t.Errorf("server saw %d activities, report counts %d", got, want)
		}
		if got, want := int64(f.hits["GET /v1/products"]), opStats(t, rep, loadgen.OpBrowse).Count+1; got != want {
			t.Errorf("server saw %d product listings, want browse count + 1 discovery = %d", got, want)
		}
		for _, ty := range []string{"flight", "hotel", "card_spend"} {
			if f.activityTy[ty] == 0 {
				t.Errorf("no %s activities in %v", ty, f.activityTy)
			}
		}
		if f.payTokens["tok_chargeDeclined"] == 0 || f.payTokens["tok_visa"] == 0 {
			t.Errorf("payment tokens %v: want both approvals and declines", f.payTokens)
		}
		if f.guestEmails == 0 || f.pointsUsed == 0 {
			t.Errorf("guest checkouts %d, pay-with-points checkouts %d: want some of each", f.guestEmails, f.pointsUsed)
		}
		partner, member := 0, 0
		for _, tr := range f.transfers {
			if tr["partner_id"] != nil {
				partner++
			}
			if tr["to_member_id"] != nil {
				member++
				if tr["to_member_id"] == "" {
					t.Errorf("transfer to nobody: %v", tr)
				}
			}
		}
		if member == 0 {
			t.Errorf("transfers %v: want member transfers", f.transfers)
		}
	})
	// Declines are rejections, not failures.
	co := opStats(t, rep, loadgen.OpCheckout)
	if co.ErrorsByCode["payment_declined"] == 0 || co.Errors != 0 {
		t.Errorf("checkout: declines %d, failures %d", co.ErrorsByCode["payment_declined"], co.Errors)
	}
}

func TestSameSeedSameMix(t *testing.T) {
	counts := func() map[string]int64 {
		f := newFake(t, fakeBehaviour{})
		cfg := baseConfig(f)
		cfg.Rate = 5000 // open model: one scheduler draws the sequence
		cfg.Requests = 300
		rep := run(t, cfg)
		m := map[string]int64{}
		for _, s := range rep.Ops {
			m[s.Name] = s.Count
		}
		return m
	}
	a, b := counts(), counts()
	for op, n := range a {
		if b[op] != n {
			t.Fatalf("same seed, different mixes: %v vs %v", a, b)
		}
	}
}

func TestHeadersOnEveryRequest(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.Setup = true
	cfg.Members = 5
	cfg.Requests = 300
	rep := run(t, cfg)
	if rep.Total.Errors != 0 {
		t.Fatalf("failures: %v", rep.Total.FailuresByCode)
	}
	f.snapshot(func(f *fake) {
		if len(f.violations) > 0 {
			t.Fatalf("%d header violations, first: %v", len(f.violations), f.violations[:min(5, len(f.violations))])
		}
		moving := 0
		for p := range valueMoving {
			moving += f.hits[p]
		}
		if moving == 0 || len(f.idemKeys) != moving {
			t.Errorf("%d distinct Idempotency-Keys for %d value-moving POSTs", len(f.idemKeys), moving)
		}
	})
}

func TestSetupSeedsMembersAndStock(t *testing.T) {
	f := newFake(t, fakeBehaviour{products: 3})
	cfg := baseConfig(f)
	cfg.MemberIDs = nil
	cfg.Setup = true
	cfg.Members = 7
	cfg.Stock = 123456
	cfg.Mix = map[string]int{loadgen.OpEarn: 1}
	cfg.Requests = 10
	rep := run(t, cfg)

	if rep.Members != 7 {
		t.Errorf("report.Members = %d, want 7", rep.Members)
	}
	idRE := regexp.MustCompile(`^lg-` + regexp.QuoteMeta(rep.RunID) + `-\d+$`)
	f.snapshot(func(f *fake) {
		if len(f.memberOrder) != 7 {
			t.Fatalf("created %d members, want 7", len(f.memberOrder))
		}
		credited := 0
		for _, id := range f.memberOrder {
			if !idRE.MatchString(id) {
				t.Errorf("member id %q does not follow lg-<run id>-<n>", id)
			}
			if f.activities[id] < 3 {
				t.Errorf("member %s got %d starting activities, want at least 3", id, f.activities[id])
			}
			credited += f.activities[id]
		}
		if credited != 3*7+10 {
			t.Errorf("%d activities in all, want 21 from setup + 10 earns", credited)
		}
		for i := range 3 {
			if got := f.inventory["p"+string(rune('0'+i))]; got != 123456 {
				t.Errorf("stock of p%d = %d, want 123456", i, got)
			}
		}
		if f.auth["POST /v1/members"][adminToken] != 7 || f.auth["POST /v1/members/{id}/activities"][serviceToken] != 31 {
			t.Errorf("tokens used: members %v, activities %v", f.auth["POST /v1/members"], f.auth["POST /v1/members/{id}/activities"])
		}
	})
}

func TestTokensByCaller(t *testing.T) {
	t.Run("member tokens", func(t *testing.T) {
		f := newFake(t, fakeBehaviour{})
		cfg := baseConfig(f)
		cfg.Requests = 200
		rep := run(t, cfg)
		if rep.Total.Errors != 0 {
			t.Fatalf("failures: %v", rep.Total.FailuresByCode)
		}
		f.snapshot(func(f *fake) {
			for tok, n := range f.auth["POST /v1/members/{id}/redemptions"] {
				if !strings.HasPrefix(tok, "member:") {
					t.Errorf("%d redemptions with token %q, want member tokens", n, tok)
				}
			}
			memberCarts := 0
			for _, owner := range f.carts {
				if owner != "" {
					memberCarts++
				}
			}
			if memberCarts == 0 || f.guestEmails == 0 {
				t.Errorf("member carts %d, guest checkouts %d: want both", memberCarts, f.guestEmails)
			}
		})
	})
	t.Run("no member tokens", func(t *testing.T) {
		f := newFake(t, fakeBehaviour{})
		cfg := baseConfig(f)
		cfg.MemberToken = nil
		cfg.Requests = 200
		rep := run(t, cfg)
		if rep.Total.Errors != 0 {
			t.Fatalf("failures: %v", rep.Total.FailuresByCode)
		}
		f.snapshot(func(f *fake) {
			for _, p := range []string{"POST /v1/members/{id}/redemptions", "POST /v1/members/{id}/transfers"} {
				for tok, n := range f.auth[p] {
					if tok != serviceToken {
						t.Errorf("%s: %d calls with token %q, want the service token", p, n, tok)
					}
				}
			}
			for id, owner := range f.carts {
				if owner != "" {
					t.Errorf("cart %s belongs to %s without member tokens", id, owner)
				}
			}
		})
	})
}

func TestErrorClassification(t *testing.T) {
	f := newFake(t, fakeBehaviour{transferStatus: 500, rejectRedeemN: 2, stockOutN: 3, browsePlain503: true, skipBrowse: 1})
	cfg := baseConfig(f)
	cfg.Requests = 400
	cfg.DeclineShare = 0.3
	rep := run(t, cfg)

	var declined, stockOut, short int64
	f.snapshot(func(f *fake) {
		declined, stockOut, short = int64(f.rejected["payment_declined"]), int64(f.rejected["insufficient_stock"]), int64(f.rejected["insufficient_points"])
	})
	if declined == 0 || stockOut == 0 || short == 0 {
		t.Fatalf("the fake rejected too little to test: declined %d, stock %d, points %d", declined, stockOut, short)
	}

	co := opStats(t, rep, loadgen.OpCheckout)
	if co.Errors != 0 || co.Rejected != declined+stockOut || co.ErrorsByCode["payment_declined"] != declined || co.ErrorsByCode["insufficient_stock"] != stockOut {
		t.Errorf("checkout: %+v; want 0 failures, %d declines, %d stock-outs as rejections", co, declined, stockOut)
	}
	rd := opStats(t, rep, loadgen.OpRedeem)
	if rd.Errors != 0 || rd.Rejected != short || rd.ErrorsByCode["insufficient_points"] != short || rd.Status5xx != 0 {
		t.Errorf("redeem: %+v; want %d insufficient_points rejections and no failures", rd, short)
	}
	tr := opStats(t, rep, loadgen.OpTransfer)
	if tr.Count == 0 || tr.Errors != tr.Count || tr.Status5xx != tr.Count || tr.FailuresByCode["internal"] != tr.Count {
		t.Errorf("transfer: %+v; want every one a 5xx failure coded internal", tr)
	}
	br := opStats(t, rep, loadgen.OpBrowse)
	if br.Count == 0 || br.Errors != br.Count || br.FailuresByCode["http_503"] != br.Count || br.Status5xx != br.Count {
		t.Errorf("browse: %+v; want every one a plain 503 failure coded http_503", br)
	}
	if ea := opStats(t, rep, loadgen.OpEarn); ea.Errors != 0 || ea.Rejected != 0 {
		t.Errorf("earn: %+v; want clean", ea)
	}
	if rep.Total.Errors != tr.Count+br.Count || rep.Total.Status5xx != tr.Count+br.Count || !rep.Failed() {
		t.Errorf("total: %+v", rep.Total)
	}
	if rep.Total.Rejected != declined+stockOut+short {
		t.Errorf("total rejected %d, want %d", rep.Total.Rejected, declined+stockOut+short)
	}
}

func TestUnexpectedClientErrorIsAFailure(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.ServiceToken = "wrong"
	cfg.AdminToken = ""
	cfg.Mix = map[string]int{loadgen.OpEarn: 1}
	cfg.Requests = 20
	rep := run(t, cfg)
	ea := opStats(t, rep, loadgen.OpEarn)
	if ea.Errors != 20 || ea.FailuresByCode["unauthenticated"] != 20 || ea.Status5xx != 0 {
		t.Errorf("earn with a bad token: %+v; want 20 unauthenticated failures", ea)
	}
}

func TestTransportErrors(t *testing.T) {
	dead := httptest.NewServer(nil)
	url := dead.URL
	dead.Close()
	rep := run(t, loadgen.Config{Target: url, Mix: map[string]int{loadgen.OpBrowse: 1}, Requests: 5, VUs: 2})
	br := opStats(t, rep, loadgen.OpBrowse)
	if br.Count != 5 || br.Errors != 5 || br.FailuresByCode[loadgen.CodeTransport] != 5 {
		t.Errorf("browse against a closed port: %+v", br)
	}
}

func TestOpenModelKeepsItsRate(t *testing.T) {
	// Each browse takes 100 ms. The open model still starts exactly
	// Rate × Duration operations, overlapping them; one closed-model VU
	// politely slows down instead.
	f := newFake(t, fakeBehaviour{browseDelay: 100 * time.Millisecond})
	cfg := loadgen.Config{Target: f.srv.URL, Mix: map[string]int{loadgen.OpBrowse: 1}, Rate: 50, Duration: time.Second}
	rep := run(t, cfg)
	if rep.Model != "open" {
		t.Errorf("model %q", rep.Model)
	}
	if rep.Total.Count != 50 || rep.Total.Errors != 0 {
		t.Fatalf("open model: %d operations (%d failed), want exactly 50 clean", rep.Total.Count, rep.Total.Errors)
	}
	if f.maxIn.Load() < 2 {
		t.Errorf("open model never overlapped requests (max in flight %d)", f.maxIn.Load())
	}
	if rep.Total.P50 < 100*time.Millisecond {
		t.Errorf("p50 %v below the server's 100ms", rep.Total.P50)
	}

	closed := run(t, loadgen.Config{Target: f.srv.URL, Mix: map[string]int{loadgen.OpBrowse: 1}, VUs: 1, Duration: time.Second})
	if closed.Total.Count > 11 || closed.Total.Count >= rep.Total.Count {
		t.Errorf("closed model with one VU did %d operations in 1s against a 100ms server", closed.Total.Count)
	}
}

func TestOpenModelDropsOverTheInFlightCap(t *testing.T) {
	s := newStall(1, 2*time.Second)
	f := newFake(t, fakeBehaviour{stall: s})
	rep := run(t, loadgen.Config{Target: f.srv.URL, Mix: map[string]int{loadgen.OpBrowse: 1}, Rate: 1000, Requests: 30, MaxInFlight: 5})
	br := opStats(t, rep, loadgen.OpBrowse)
	// At most five run at once, and none of them finish before the 2s stall
	// ends, long after all 30 arrivals at 1000/s: the other 25 are dropped.
	if br.Count != 30 || br.FailuresByCode[loadgen.CodeClientOverload] < 20 || br.Errors != br.FailuresByCode[loadgen.CodeClientOverload] {
		t.Errorf("browse: %+v; want 30 operations, most dropped as client_overload", br)
	}
}

func TestOpenModelMeasuresFromIntendedStart(t *testing.T) {
	// The server stalls every request for 400ms from the 20th on. Requests
	// scheduled during the stall must show the wait in their latency, and
	// every operation's latency runs from its slot in the schedule.
	st := newStall(20, 400*time.Millisecond)
	f := newFake(t, fakeBehaviour{stall: st})
	var got samples
	cfg := loadgen.Config{Target: f.srv.URL, Mix: map[string]int{loadgen.OpBrowse: 1}, Rate: 100, Duration: 2 * time.Second, Observe: got.add}
	rep := run(t, cfg)
	all := got.list()
	if len(all) != 200 || rep.Total.Count != 200 {
		t.Fatalf("%d samples, %d counted; want 200", len(all), rep.Total.Count)
	}
	slices.SortFunc(all, func(a, b loadgen.Sample) int { return a.Intended.Compare(b.Intended) })
	for i := 1; i < len(all); i++ {
		if d := all[i].Intended.Sub(all[i-1].Intended); d != 10*time.Millisecond {
			t.Fatalf("slots %d and %d are %v apart, want the schedule's 10ms", i-1, i, d)
		}
	}
	began, ended := st.window()
	if began.IsZero() || ended.IsZero() {
		t.Fatal("the stall never happened")
	}
	var during []loadgen.Sample
	for _, s := range all {
		if !s.Intended.Before(began) && s.Intended.Before(ended) {
			during = append(during, s)
		}
	}
	if len(during) < 10 {
		t.Fatalf("only %d operations scheduled during the 400ms stall", len(during))
	}
	for _, s := range during {
		if end := s.Intended.Add(s.Latency); end.Before(ended) {
			t.Fatalf("operation scheduled %v into the stall reported %v, ending before the stall did", s.Intended.Sub(began), s.Latency)
		}
	}
	// Earlier slots waited longer.
	if first, last := during[0], during[len(during)-1]; first.Latency <= last.Latency {
		t.Errorf("first slot in the stall waited %v, last %v: want the first longer", first.Latency, last.Latency)
	}
	if slow := opStats(t, rep, loadgen.OpBrowse).P90; slow < 50*time.Millisecond && len(during) > 25 {
		t.Errorf("p90 %v does not show a stall covering %d of 200 operations", slow, len(during))
	}

	// The closed model hides the same stall: its one VU waits once.
	st2 := newStall(20, 400*time.Millisecond)
	f2 := newFake(t, fakeBehaviour{stall: st2})
	var closed samples
	run(t, loadgen.Config{Target: f2.srv.URL, Mix: map[string]int{loadgen.OpBrowse: 1}, VUs: 1, Requests: 60, Observe: closed.add})
	slowClosed := 0
	for _, s := range closed.list() {
		if s.Latency >= 200*time.Millisecond {
			slowClosed++
		}
	}
	slowOpen := 0
	for _, s := range all {
		if s.Latency >= 200*time.Millisecond {
			slowOpen++
		}
	}
	if slowClosed > 3 || slowOpen < 10 {
		t.Errorf("slow operations: open model %d, closed model %d; want the closed model to see the stall about once", slowOpen, slowClosed)
	}
}

func TestStopsAtRequests(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	for _, tc := range []struct {
		name string
		rate float64
	}{{"closed", 0}, {"open", 2000}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(f)
			cfg.Rate = tc.rate
			cfg.Requests = 37
			cfg.Duration = time.Hour
			rep := run(t, cfg)
			if rep.Total.Count != 37 {
				t.Errorf("count %d, want 37", rep.Total.Count)
			}
		})
	}
}

func TestStopsAtDuration(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.Duration = 300 * time.Millisecond
	start := time.Now()
	rep := run(t, cfg)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a 300ms run took %v", took)
	}
	if rep.Elapsed < 300*time.Millisecond || rep.Total.Count == 0 || rep.Interrupted {
		t.Errorf("elapsed %v, count %d, interrupted %v", rep.Elapsed, rep.Total.Count, rep.Interrupted)
	}
	if rep.Requests < rep.Total.Count {
		t.Errorf("%d HTTP requests for %d operations", rep.Requests, rep.Total.Count)
	}
}

func TestStopsOnCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate float64
	}{{"closed", 0}, {"open", 200}} {
		t.Run(tc.name, func(t *testing.T) {
			// The server stalls from the 5th browse for longer than the test
			// may run: only cancellation can end the run.
			f := newFake(t, fakeBehaviour{stall: newStall(5, time.Minute)})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var seen sync.Once
			cfg := loadgen.Config{Target: f.srv.URL, Mix: map[string]int{loadgen.OpBrowse: 1}, Rate: tc.rate, VUs: 2, Duration: time.Hour,
				Observe: func(loadgen.Sample) { seen.Do(func() { time.AfterFunc(100*time.Millisecond, cancel) }) }}
			type result struct {
				rep *loadgen.Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := loadgen.Run(ctx, cfg)
				done <- result{rep, err}
			}()
			select {
			case r := <-done:
				if r.err != nil {
					t.Fatalf("Run: %v", r.err)
				}
				if !r.rep.Interrupted {
					t.Error("report not marked interrupted")
				}
				if r.rep.Total.Errors != 0 {
					t.Errorf("operations cut short by the cancel were counted as failures: %v", r.rep.Total.FailuresByCode)
				}
				if r.rep.Total.Count < 1 {
					t.Error("completed operations were lost")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after its context was cancelled")
			}
		})
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cfg := baseConfig(f)
	cfg.Setup = true
	cfg.Requests = 10
	if _, err := loadgen.Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestConfigValidation(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	tests := []struct {
		name    string
		edit    func(*loadgen.Config)
		wantErr string
	}{
		{"no target", func(c *loadgen.Config) { c.Target = "" }, "Target is required"},
		{"not a URL", func(c *loadgen.Config) { c.Target = "localhost:8080" }, "http://"},
		{"no end", func(c *loadgen.Config) { c.Requests = 0; c.Duration = 0 }, "set Duration or Requests"},
		{"negative rate", func(c *loadgen.Config) { c.Rate = -1 }, "must not be negative"},
		{"bad mix", func(c *loadgen.Config) { c.Mix = map[string]int{"fly": 1} }, "unknown operation"},
		{"share over one", func(c *loadgen.Config) { c.DeclineShare = 1.5 }, "DeclineShare"},
		{"setup without admin", func(c *loadgen.Config) { c.Setup = true; c.AdminToken = "" }, "Setup needs AdminToken"},
		{"earn without token", func(c *loadgen.Config) { c.ServiceToken = ""; c.AdminToken = "" }, "earn needs ServiceToken"},
		{"members unknown", func(c *loadgen.Config) { c.MemberIDs = nil }, "no members are known"},
		{"transfer with one member, no partner", func(c *loadgen.Config) {
			c.MemberIDs = []string{"solo"}
			c.Partners = []string{}
			c.Mix = map[string]int{loadgen.OpTransfer: 1}
		}, "transfer needs two members"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(f)
			cfg.Requests = 1
			tc.edit(&cfg)
			_, err := loadgen.Run(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSetupFailureIsReported(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.Setup = true
	cfg.AdminToken = "not-admin"
	cfg.Requests = 1
	_, err := loadgen.Run(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "setup") || !strings.Contains(err.Error(), "403 forbidden") {
		t.Fatalf("error %v, want a setup error naming the 403", err)
	}
}

func TestProgressLines(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	var out testlog.Buffer
	cfg := baseConfig(f)
	cfg.Duration = 1200 * time.Millisecond
	cfg.Progress = &out
	run(t, cfg)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 1 {
		t.Fatal("no progress output")
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"req/s", "ops/s", "errors 0", "p99"} {
		if !strings.Contains(last, want) {
			t.Errorf("progress line %q lacks %q", last, want)
		}
	}
}
