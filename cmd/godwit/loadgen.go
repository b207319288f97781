package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/godwit-dev/godwit/api/client"
	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/loadgen"
)

const loadgenSynopsis = "loadgen --target URL [flags]\n\n" +
	"Sends realistic traffic (browse, cart and checkout, earning activities, redemptions,\n" +
	"transfers) from many virtual users, prints a live progress line and a latency table per\n" +
	"operation, then runs verify against the server. Tokens are minted with the server's\n" +
	"secret (--data-dir or --secret), so run it where that secret is readable. Requests carry\n" +
	"the baggage synthetic=true. Exits 1 on any 5xx, transport error or invariant violation.\n\n" +
	"Rate limits: a server's default limits (20 req/s per member token, 50 req/s per client IP\n" +
	"without a token) are far below what a load test sends from a few hundred members and\n" +
	"one IP. So loadgen also mints a load-test pass with the secret and sends it on every\n" +
	"request (header Godwit-Load-Test-Pass); the server leaves requests with a valid pass out\n" +
	"of its rate limits, and nothing else. The pass grants no access (as a bearer token it is\n" +
	"refused), expires with the run (--duration + 1h) and can be revoked like a token; only\n" +
	"a holder of the signing secret, who can mint admin tokens anyway, can mint one. Real\n" +
	"traffic keeps its limits. --no-load-test-pass sends none, to test the limits themselves."

// loadgenFlags are runLoadgen's flags: most land in loadgen.Config directly.
type loadgenFlags struct {
	common   commonFlags
	cfg      loadgen.Config
	mix      string
	jsonOut  string
	noVerify bool
	grace    time.Duration
	noPass   bool
	faults   faultSettings
}

func (f *loadgenFlags) register(fs *flag.FlagSet) {
	f.common.register(fs)
	c := &f.cfg
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "base URL of the Godwit server")
	fs.StringVar(&f.mix, "mix", loadgen.FormatMix(loadgen.DefaultMix()), "weighted operation mix")
	fs.Float64Var(&c.Rate, "rate", 0, "open model: operations started per second (0: closed model with --vus)")
	fs.IntVar(&c.VUs, "vus", 16, "closed model: concurrent virtual users")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long to run (0: until --requests)")
	fs.IntVar(&c.Requests, "requests", 0, "stop after this many operations (0: until --duration)")
	fs.BoolVar(&c.Setup, "setup", true, "seed members and stock through the admin API first")
	fs.IntVar(&c.Members, "members", 200, "members to create during setup")
	fs.Float64Var(&c.DeclineShare, "decline-share", 0.05, "share of checkouts with a declining test card")
	fs.Float64Var(&c.PointsShare, "points-share", 0.2, "share of member checkouts paying partly with points")
	fs.BoolVar(&c.HotMember, "hot-member", false, "contention on one account: every redeem and transfer acts for one member (setup's first, credited 1,000,000,000 points; without --setup the first known member)")
	fs.BoolVar(&c.HotProduct, "hot-product", false, "flash sale: every checkout buys one unit of the catalogue's first product; sold out, checkouts are rejected 409 insufficient_stock")
	fs.Int64Var(&c.HotProductStock, "hot-product-stock", 1_000_000, "with --hot-product and --setup: the hot product's stock")
	fs.StringVar(&f.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&f.noVerify, "no-verify", false, "skip verify at the end")
	fs.DurationVar(&f.grace, "verify-grace", 2*time.Minute, "grace passed to verify")
	fs.Int64Var(&c.Seed, "seed", 0, "random seed (0: time-based)")
	fs.BoolVar(&f.noPass, "no-load-test-pass", false, "send no load-test pass: the run is subject to the server's rate limits like real traffic")
	fs.IntVar(&f.faults.paymentLatencyMS, "payment-latency-ms", -1, "fault: set the payment simulator's added latency for the run (-1: leave as is)")
	fs.IntVar(&f.faults.declineRate, "decline-rate", -1, "fault: percent of charges the simulator declines for the run (-1: leave as is)")
	fs.IntVar(&f.faults.reserveDelayMS, "reserve-delay-ms", -1, "fault: delay every stock reservation for the run (-1: leave as is)")
}

func runLoadgen(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "loadgen", loadgenSynopsis)
	var f loadgenFlags
	f.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if f.cfg.HotProductStock < 1 {
		return fmt.Errorf("--hot-product-stock %d: want at least 1", f.cfg.HotProductStock)
	}
	m, err := loadgen.ParseMix(f.mix)
	if err != nil {
		return fmt.Errorf("--mix: %w", err)
	}
	cfg := f.cfg
	cfg.Mix, cfg.Progress, cfg.Version = m, e.stderr, version()
	if err := f.mintTokens(&cfg); err != nil {
		return err
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	restore, err := applyFaults(ctx, cfg.Target, cfg.AdminToken, f.faults)
	if err != nil {
		return err
	}
	defer restore()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	rep.WriteTable(e.stdout)
	if f.jsonOut != "" {
		if err := writeReportJSON(f.jsonOut, rep); err != nil {
			return err
		}
	}
	var failures []error
	if rep.Failed() {
		failures = append(failures, fmt.Errorf("%d failed operations (%d 5xx)", rep.Total.Errors, rep.Total.Status5xx))
	}
	if !f.noVerify {
		vr, err := verifyRemote(ctx, cfg.Target, cfg.AdminToken, f.grace)
		if err != nil {
			return err
		}
		if err := printVerify(e.stdout, vr); err != nil {
			failures = append(failures, err)
		}
	}
	return errors.Join(failures...)
}

// mintTokens signs the run's tokens with the server's secret: they last the
// run and an hour more.
func (f *loadgenFlags) mintTokens(cfg *loadgen.Config) error {
	secret, _, err := f.common.LoadSecret()
	if err != nil {
		return err
	}
	m, err := app.NewMinter(secret)
	if err != nil {
		return err
	}
	ttl := cfg.Duration + time.Hour
	if cfg.AdminToken, err = m.Mint("admin", "loadgen", ttl); err != nil {
		return err
	}
	if cfg.ServiceToken, err = m.Mint("service", "loadgen", ttl); err != nil {
		return err
	}
	if !f.noPass {
		if cfg.LoadTestPass, err = m.MintLoadTestPass("loadgen", ttl); err != nil {
			return err
		}
	}
	cfg.MemberToken = func(id string) (string, error) { return m.Mint("member", id, ttl) }
	return nil
}

func writeReportJSON(path string, rep *loadgen.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

type faultSettings struct {
	paymentLatencyMS, declineRate, reserveDelayMS int
}

// applyFaults sets the requested fault injections through the admin API and
// returns a function that puts back what was there before.
func applyFaults(ctx context.Context, target, token string, f faultSettings) (func(), error) {
	noop := func() {}
	if f.paymentLatencyMS < 0 && f.declineRate < 0 && f.reserveDelayMS < 0 {
		return noop, nil
	}
	api, err := adminAPI(target, token, http.DefaultClient)
	if err != nil {
		return nil, err
	}
	var restores []func()
	restore := func() {
		for _, r := range restores {
			r()
		}
	}
	if f.paymentLatencyMS >= 0 || f.declineRate >= 0 {
		undo, err := setPaymentFaults(ctx, api, target, f)
		if err != nil {
			return nil, fmt.Errorf("payment faults: %w", err)
		}
		restores = append(restores, undo)
	}
	if f.reserveDelayMS >= 0 {
		undo, err := setInventoryFaults(ctx, api, target, f)
		if err != nil {
			restore()
			return nil, fmt.Errorf("inventory faults: %w", err)
		}
		restores = append(restores, undo)
	}
	return restore, nil
}

// setPaymentFaults changes the payment simulator's latency and decline rate as
// f asks, keeping its other settings, and returns how to put back the old ones.
func setPaymentFaults(ctx context.Context, api *client.ClientWithResponses, target string, f faultSettings) (func(), error) {
	got, err := api.GetPaymentFaultsWithResponse(ctx)
	if err != nil {
		return nil, err
	}
	if got.JSON200 == nil {
		return nil, answerError(target, got.StatusCode(), got.ApplicationproblemJSONDefault, got.Body)
	}
	before := *got.JSON200
	input := func(p client.PaymentFaults) client.PaymentFaultsInput {
		return client.PaymentFaultsInput{DeclineCode: &p.DeclineCode, DeclineRatePercent: &p.DeclineRatePercent, LatencyMs: &p.LatencyMs}
	}
	after := before
	if f.paymentLatencyMS >= 0 {
		after.LatencyMs = int64(f.paymentLatencyMS)
	}
	if f.declineRate >= 0 {
		after.DeclineRatePercent = int64(f.declineRate)
	}
	set, err := api.SetPaymentFaultsWithResponse(ctx, input(after))
	if err != nil {
		return nil, err
	}
	if set.JSON200 == nil {
		return nil, answerError(target, set.StatusCode(), set.ApplicationproblemJSONDefault, set.Body)
	}
	return func() { _, _ = api.SetPaymentFaultsWithResponse(context.WithoutCancel(ctx), input(before)) }, nil
}

// setInventoryFaults sets the reservation delay f asks for and returns how to
// put back the old one.
func setInventoryFaults(ctx context.Context, api *client.ClientWithResponses, target string, f faultSettings) (func(), error) {
	got, err := api.GetInventoryFaultsWithResponse(ctx)
	if err != nil {
		return nil, err
	}
	if got.JSON200 == nil {
		return nil, answerError(target, got.StatusCode(), got.ApplicationproblemJSONDefault, got.Body)
	}
	before := got.JSON200.ReserveDelayMs
	delay := int64(f.reserveDelayMS)
	set, err := api.SetInventoryFaultsWithResponse(ctx, client.InventoryFaultsInput{ReserveDelayMs: &delay})
	if err != nil {
		return nil, err
	}
	if set.JSON200 == nil {
		return nil, answerError(target, set.StatusCode(), set.ApplicationproblemJSONDefault, set.Body)
	}
	return func() {
		_, _ = api.SetInventoryFaultsWithResponse(context.WithoutCancel(ctx), client.InventoryFaultsInput{ReserveDelayMs: &before})
	}, nil
}
