// Package loadgen drives synthetic traffic against a running Godwit server —
// browsing, checkouts, earning activities, redemptions and transfers in a
// weighted mix — and reports throughput, latency percentiles (HDR histograms)
// and outcomes by problem code per operation.
//
// Two load models are offered. The open model (Config.Rate > 0) starts
// operations on a fixed schedule whatever the server does, and measures each
// operation's latency from the moment it was scheduled to start, so a stalling
// server shows up as latency rather than as politely reduced load (no
// coordinated omission). The closed model (Config.VUs) runs a fixed number of
// virtual users back to back, which finds the saturation throughput.
//
// Every request carries the W3C baggage entry synthetic=true, a
// godwit-loadgen User-Agent and, when configured, a load-test pass that exempts
// it from the server's rate limits; value-moving POSTs carry a fresh
// Idempotency-Key.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-dev/godwit/api/client"
)

// Config describes a run. Zero values take the documented defaults. For the
// share fields a negative value means "none" (zero means "the default").
type Config struct {
	// Target is the server's base URL, e.g. http://127.0.0.1:8080.
	Target string
	// AdminToken is used for setup: creating members and setting stock.
	AdminToken string
	// ServiceToken posts activities for any member, and redeems and transfers
	// for members when MemberToken is nil. Empty falls back to AdminToken.
	ServiceToken string
	// MemberToken mints a member's bearer token. It is called once per member
	// and must be safe for concurrent use. Nil: checkouts are all guest
	// checkouts and redemptions and transfers use ServiceToken.
	MemberToken func(memberID string) (string, error)
	// LoadTestPass, when set, is sent on every request in the
	// Godwit-Load-Test-Pass header (auth.LoadTestPassHeader): the server then
	// leaves the run's requests out of its per-caller rate limits, which a few
	// hundred synthetic members and one loopback IP would otherwise exceed. The
	// requests keep their own tokens: guests stay guests, members members.
	LoadTestPass string

	// Mix weights the operations (see ParseMix); nil is DefaultMix.
	Mix map[string]int
	// Rate > 0 selects the open model: operations started per second.
	Rate float64
	// VUs is the closed model's number of virtual users (default 16). In the
	// open model it only sizes setup's parallelism and the connection pool.
	VUs int
	// MaxInFlight caps the open model's operations in flight (default 4096);
	// arrivals over the cap are dropped and counted as client_overload failures.
	MaxInFlight int
	// Duration stops the load after this long, Requests after this many
	// operations; whichever comes first. At least one must be set.
	Duration time.Duration
	Requests int
	// Timeout bounds one operation, all its requests together (default 30s).
	Timeout time.Duration

	// Setup creates Members members and sets every product's stock first.
	Setup bool
	// Members is how many members setup creates (default 200).
	Members int
	// MemberIDs are existing members to use when Setup is false (or in
	// addition to the ones setup creates). Earn, redeem and transfer need
	// members; member checkouts need members and MemberToken.
	MemberIDs []string
	// Stock is the available quantity setup gives every product (default 100,000,000).
	Stock int64

	// HotMember concentrates the loyalty load on one account, to measure
	// contention on its balance: every redemption is the hot member's and every
	// transfer is sent by it (to the other members or a partner). The hot
	// member is the first member setup creates, which setup credits with
	// HotMemberPoints so it does not simply run dry; without Setup it is the
	// first of MemberIDs, used as it is. Earns and checkouts still spread.
	HotMember bool
	// HotMemberPoints is the adjustment setup gives the hot member
	// (default 1,000,000,000: hundreds of thousands of redemptions).
	HotMemberPoints int64
	// HotProduct turns every checkout into a flash sale of one product: each
	// cart holds one unit of the catalogue's first product, which setup stocks
	// with HotProductStock instead of Stock. Once it sells out, checkouts are
	// rejected with 409 insufficient_stock, an expected outcome.
	HotProduct bool
	// HotProductStock is the hot product's available quantity after setup
	// (default 1,000,000).
	HotProductStock int64

	// DeclineShare of checkouts pay with DeclineToken (default 0.05).
	DeclineShare float64
	// PointsShare of member checkouts pay partly with points (default 0.2).
	PointsShare float64
	// GuestShare of checkouts are guest checkouts when member checkouts are
	// possible (default 0.25).
	GuestShare float64
	// PayToken is the payment token that succeeds (default "tok_visa");
	// DeclineToken one the payment simulator declines (default "tok_chargeDeclined").
	PayToken, DeclineToken string
	// Partners are partner ids for partner transfers (default: the built-in
	// program's northwind-airways, meridian-air, harbor-hotels). PartnerShare
	// of transfers go to a partner (default 0.25), the rest to another member.
	Partners     []string
	PartnerShare float64
	// PartnerPoints is a partner transfer's size (default 3000, a valid amount
	// for every built-in partner); member transfers move MemberTransferPoints
	// (default 100).
	PartnerPoints, MemberTransferPoints int64

	// HTTPClient sends the requests; nil builds one with a connection pool
	// sized for the run.
	HTTPClient *http.Client
	// Progress receives a progress line every second (elapsed, requests/s,
	// operations/s, errors, p99 of the last second); nil for none.
	Progress io.Writer
	// Seed makes the sequence of operations and their parameters reproducible
	// (ids and idempotency keys are always random).
	Seed int64
	// Version goes into the User-Agent, godwit-loadgen/<Version> (default "dev").
	Version string
	// Observe, when set, is called after every operation, from many goroutines
	// at once. It must be quick.
	Observe func(Sample)
}

// Sample is one operation's result, given to Config.Observe.
type Sample struct {
	Op string
	// Intended is when the operation was scheduled to start (open model) or
	// started (closed model); Latency runs from it to completion.
	Intended time.Time
	Latency  time.Duration
	// Status is the HTTP status of the response that decided the outcome
	// (0 for transport errors and dropped arrivals).
	Status int
	// Code is "" on success, else the problem code, http_<status>,
	// transport_error, timeout, client_overload, bad_response, member_token or
	// build_request (the generated client could not build the request).
	Code string
	// Failed is true for failures; rejections (402/409/422) are not failures.
	Failed bool
}

// Report is the result of a run.
type Report struct {
	RunID       string
	Target      string
	Model       string // "open" or "closed"
	Rate        float64
	VUs         int
	Mix         map[string]int
	Started     time.Time     // start of the load phase
	Elapsed     time.Duration // length of the load phase, including the wait for in-flight operations
	Setup       time.Duration // time spent seeding, 0 without Setup
	Members     int           // members the operations used
	HotMember   string        // with Config.HotMember: the member redemptions and transfers act on
	HotProduct  string        // with Config.HotProduct: the product every checkout buys
	Requests    int64         // HTTP requests sent during the load phase
	Interrupted bool          // the context was cancelled before the run ended
	Ops         []OpStats
	Total       OpStats
}

// Failed reports whether any operation failed (a 5xx, transport error,
// unexpected 4xx or dropped arrival).
func (r *Report) Failed() bool { return r.Total.Errors > 0 }

// Run generates load as cfg says and reports on it. Cancelling ctx stops the
// run: Run then returns what completed, with Report.Interrupted set and a nil
// error (operations cut short by the cancellation are not counted). Errors are
// for configuration problems and failed setup or discovery.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	g, err := newGen(cfg)
	if err != nil {
		return nil, err
	}
	defer g.closeIdle()

	setupStart := time.Now()
	if err := g.prepare(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("loadgen: interrupted before the load started: %w", ctx.Err())
		}
		return nil, err
	}
	var setupTook time.Duration
	if cfg.Setup {
		setupTook = time.Since(setupStart)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: interrupted before the load started: %w", err)
	}

	sentBefore := g.c.requests.Load()
	started := time.Now()
	stopProgress := g.startProgress(started)
	if g.cfg.Rate > 0 {
		g.runOpen(ctx, started)
	} else {
		g.runClosed(ctx, started)
	}
	elapsed := time.Since(started)
	stopProgress()

	ops, total := g.rec.summary(g.mix.has, elapsed)
	model := "closed"
	if g.cfg.Rate > 0 {
		model = "open"
	}
	return &Report{
		RunID:       g.runID,
		Target:      g.c.base,
		Model:       model,
		Rate:        g.cfg.Rate,
		VUs:         g.cfg.VUs,
		Mix:         g.mix.mix,
		Started:     started,
		Elapsed:     elapsed,
		Setup:       setupTook,
		Members:     len(g.members),
		HotMember:   g.hotMember(),
		HotProduct:  g.hotProductID(),
		Requests:    g.c.requests.Load() - sentBefore,
		Interrupted: ctx.Err() != nil,
		Ops:         ops,
		Total:       total,
	}, nil
}

// gen is one run's state.
type gen struct {
	cfg          Config
	runID        string
	mix          *picker
	c            *caller
	ownClient    bool
	serviceToken string
	rec          *recorder
	inFlight     atomic.Int64

	// Discovered or created before the load starts; read-only afterwards.
	products []client.Product
	options  []client.RedemptionOption // sorted by points, cheapest first
	members  []string

	tokenMu sync.Mutex
	tokens  map[string]string
}

func newGen(cfg Config) (*gen, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	g := &gen{
		cfg:          cfg,
		runID:        newRunID(),
		mix:          newPicker(cfg.Mix),
		serviceToken: cfg.ServiceToken,
		tokens:       map[string]string{},
	}
	if g.serviceToken == "" {
		g.serviceToken = cfg.AdminToken
	}
	hc := cfg.HTTPClient
	if hc == nil {
		conns := cfg.VUs
		if cfg.Rate > 0 {
			conns = min(max(cfg.VUs, int(cfg.Rate)), cfg.MaxInFlight, 1024)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 0
		tr.MaxIdleConnsPerHost = max(conns, 2)
		hc = &http.Client{Transport: tr}
		g.ownClient = true
	}
	c, err := newCaller(hc, strings.TrimRight(cfg.Target, "/"), "godwit-loadgen/"+cfg.Version, cfg.LoadTestPass)
	if err != nil {
		return nil, err
	}
	g.c = c
	g.rec = newRecorder(Operations())
	return g, nil
}

func (g *gen) closeIdle() {
	if g.ownClient {
		g.c.http.CloseIdleConnections()
	}
}

// validate checks cfg and fills in defaults.
func validate(cfg *Config) error {
	if err := checkBounds(cfg); err != nil {
		return err
	}
	if cfg.Mix == nil {
		cfg.Mix = DefaultMix()
	}
	if err := validateMix(cfg.Mix); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	setSizeDefaults(cfg)
	if err := setShares(cfg); err != nil {
		return err
	}
	setNameDefaults(cfg)
	return checkCredentials(cfg)
}

// checkBounds rejects a missing or malformed target, a run that never ends,
// and negative or unschedulable sizes.
func checkBounds(cfg *Config) error {
	if cfg.Target == "" {
		return errors.New("loadgen: Target is required")
	}
	if !strings.HasPrefix(cfg.Target, "http://") && !strings.HasPrefix(cfg.Target, "https://") {
		return fmt.Errorf("loadgen: Target %q must be an http:// or https:// URL", cfg.Target)
	}
	if cfg.Duration < 0 || cfg.Requests < 0 {
		return errors.New("loadgen: Duration and Requests must not be negative")
	}
	if cfg.Duration == 0 && cfg.Requests == 0 {
		return errors.New("loadgen: set Duration or Requests (or both) so the run ends")
	}
	if cfg.Rate < 0 || cfg.VUs < 0 || cfg.MaxInFlight < 0 || cfg.Members < 0 || cfg.Stock < 0 || cfg.Timeout < 0 {
		return errors.New("loadgen: Rate, VUs, MaxInFlight, Members, Stock and Timeout must not be negative")
	}
	if cfg.HotMemberPoints < 0 || cfg.HotProductStock < 0 {
		return errors.New("loadgen: HotMemberPoints and HotProductStock must not be negative")
	}
	if cfg.Rate > 1_000_000 {
		return fmt.Errorf("loadgen: Rate %.0f/s is beyond what one load generator can schedule", cfg.Rate)
	}
	return nil
}

// setSizeDefaults fills in the sizes left zero.
func setSizeDefaults(cfg *Config) {
	if cfg.VUs == 0 {
		cfg.VUs = 16
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Members == 0 {
		cfg.Members = 200
	}
	if cfg.Stock == 0 {
		cfg.Stock = 100_000_000
	}
	if cfg.HotMemberPoints == 0 {
		cfg.HotMemberPoints = 1_000_000_000
	}
	if cfg.HotProductStock == 0 {
		cfg.HotProductStock = 1_000_000
	}
}

// setShares fills in the shares left zero, clamps negative ones to zero and
// rejects shares over 1.
func setShares(cfg *Config) error {
	for _, s := range []struct {
		p   *float64
		def float64
		nm  string
	}{
		{&cfg.DeclineShare, 0.05, "DeclineShare"},
		{&cfg.PointsShare, 0.2, "PointsShare"},
		{&cfg.GuestShare, 0.25, "GuestShare"},
		{&cfg.PartnerShare, 0.25, "PartnerShare"},
	} {
		switch {
		case *s.p == 0:
			*s.p = s.def
		case *s.p < 0:
			*s.p = 0
		case *s.p > 1:
			return fmt.Errorf("loadgen: %s %.2f is more than 1", s.nm, *s.p)
		}
	}
	return nil
}

// setNameDefaults fills in the tokens, partners, amounts and version left empty.
func setNameDefaults(cfg *Config) {
	if cfg.PayToken == "" {
		cfg.PayToken = "tok_visa"
	}
	if cfg.DeclineToken == "" {
		cfg.DeclineToken = "tok_chargeDeclined"
	}
	if cfg.Partners == nil {
		cfg.Partners = []string{"northwind-airways", "meridian-air", "harbor-hotels"}
	}
	if cfg.PartnerPoints <= 0 {
		cfg.PartnerPoints = 3000
	}
	if cfg.MemberTransferPoints <= 0 {
		cfg.MemberTransferPoints = 100
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
}

// checkCredentials rejects a mix whose operations lack the tokens they need.
func checkCredentials(cfg *Config) error {
	if cfg.Setup && cfg.AdminToken == "" {
		return errors.New("loadgen: Setup needs AdminToken")
	}
	if cfg.Mix[OpEarn] > 0 && cfg.ServiceToken == "" && cfg.AdminToken == "" {
		return errors.New("loadgen: earn needs ServiceToken (or AdminToken)")
	}
	if (cfg.Mix[OpRedeem] > 0 || cfg.Mix[OpTransfer] > 0) && cfg.ServiceToken == "" && cfg.AdminToken == "" && cfg.MemberToken == nil {
		return errors.New("loadgen: redeem and transfer need MemberToken or ServiceToken (or AdminToken)")
	}
	return nil
}

// seqRand returns the generator for operation number seq: each operation's
// choices depend only on the seed and its place in the schedule.
func (g *gen) seqRand(stream, seq uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(g.cfg.Seed)^stream<<32, seq))
}

// runOpen starts operations at cfg.Rate per second. Arrival i is due at
// start + i/Rate; when the scheduler wakes late it starts every arrival already
// due at once, so the number of operations depends only on Rate and Duration
// (or Requests), never on how fast the server answers.
func (g *gen) runOpen(ctx context.Context, start time.Time) {
	rng := g.seqRand(0, 0)
	var deadline time.Time
	if g.cfg.Duration > 0 {
		deadline = start.Add(g.cfg.Duration)
	}
	slots := make(chan struct{}, g.cfg.MaxInFlight)
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	perOp := float64(time.Second) / g.cfg.Rate
	for i := int64(0); ; i++ {
		if g.cfg.Requests > 0 && i >= int64(g.cfg.Requests) {
			break
		}
		due := start.Add(time.Duration(float64(i) * perOp))
		if !deadline.IsZero() && !due.Before(deadline) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		name := g.mix.pick(rng)
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			g.inFlight.Add(1)
			go func(seq uint64) {
				defer func() { <-slots; g.inFlight.Add(-1); wg.Done() }()
				g.execute(ctx, name, due, g.seqRand(1, seq))
			}(uint64(i))
		default:
			o := failed(CodeClientOverload)
			g.rec.record(name, o, 0, false)
			g.observe(name, due, 0, o)
		}
	}
	wg.Wait()
}

// runClosed runs cfg.VUs virtual users, each starting its next operation as
// soon as the previous one ends.
func (g *gen) runClosed(ctx context.Context, start time.Time) {
	var deadline time.Time
	if g.cfg.Duration > 0 {
		deadline = start.Add(g.cfg.Duration)
	}
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for v := range g.cfg.VUs {
		wg.Add(1)
		go func(vu uint64) {
			defer wg.Done()
			rng := g.seqRand(2, vu)
			for ctx.Err() == nil {
				now := time.Now()
				if !deadline.IsZero() && !now.Before(deadline) {
					return
				}
				if g.cfg.Requests > 0 && claimed.Add(1) > int64(g.cfg.Requests) {
					return
				}
				g.inFlight.Add(1)
				g.execute(ctx, g.mix.pick(rng), now, rng)
				g.inFlight.Add(-1)
			}
		}(uint64(v))
	}
	wg.Wait()
}

// execute runs one operation and records it, unless the run was interrupted
// under it.
func (g *gen) execute(ctx context.Context, name string, intended time.Time, rng *rand.Rand) {
	octx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	o := g.op(octx, name, rng)
	cancel()
	latency := time.Since(intended)
	if o.code == codeCanceled || (ctx.Err() != nil && o.class == classFailed) {
		return // cut short by the interruption: not a result
	}
	g.rec.record(name, o, latency, true)
	g.observe(name, intended, latency, o)
}

func (g *gen) observe(name string, intended time.Time, latency time.Duration, o outcome) {
	if g.cfg.Observe == nil {
		return
	}
	g.cfg.Observe(Sample{Op: name, Intended: intended, Latency: latency, Status: o.status, Code: o.code, Failed: o.class == classFailed})
}

func (g *gen) op(ctx context.Context, name string, rng *rand.Rand) outcome {
	switch name {
	case OpBrowse:
		return g.browse(ctx)
	case OpCheckout:
		return g.checkout(ctx, rng)
	case OpEarn:
		return g.earn(ctx, rng)
	case OpRedeem:
		return g.redeem(ctx, rng)
	case OpTransfer:
		return g.transfer(ctx, rng)
	}
	return failed("unknown_operation")
}
