package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/godwit-dev/godwit/internal/loadgen"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

func runLoadgen(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "loadgen", "loadgen --target URL [flags]\n\n"+
		"Sends realistic traffic (browse, cart and checkout, earning activities, redemptions,\n"+
		"transfers) from many virtual users, prints a live progress line and a latency table per\n"+
		"operation, then runs verify against the server. Tokens are minted with the server's\n"+
		"secret (--data-dir or --secret), so run it where that secret is readable. Requests carry\n"+
		"the baggage synthetic=true. Exits 1 on any 5xx, transport error or invariant violation.\n\n"+
		"Rate limits: a server's default limits (20 req/s per member token, 50 req/s per client IP\n"+
		"without a token) are far below what a load test sends from a few hundred members and\n"+
		"one IP. So loadgen also mints a load-test pass with the secret and sends it on every\n"+
		"request (header Godwit-Load-Test-Pass); the server leaves requests with a valid pass out\n"+
		"of its rate limits, and nothing else. The pass grants no access (as a bearer token it is\n"+
		"refused), expires with the run (--duration + 1h) and can be revoked like a token; only\n"+
		"a holder of the signing secret, who can mint admin tokens anyway, can mint one. Real\n"+
		"traffic keeps its limits. --no-load-test-pass sends none, to test the limits themselves.")
	var common commonFlags
	common.register(fs)
	var (
		target       = fs.String("target", "http://127.0.0.1:8080", "base URL of the Godwit server")
		mix          = fs.String("mix", loadgen.FormatMix(loadgen.DefaultMix()), "weighted operation mix")
		rate         = fs.Float64("rate", 0, "open model: operations started per second (0: closed model with --vus)")
		vus          = fs.Int("vus", 16, "closed model: concurrent virtual users")
		duration     = fs.Duration("duration", 30*time.Second, "how long to run (0: until --requests)")
		requests     = fs.Int("requests", 0, "stop after this many operations (0: until --duration)")
		setup        = fs.Bool("setup", true, "seed members and stock through the admin API first")
		members      = fs.Int("members", 200, "members to create during setup")
		declineShare = fs.Float64("decline-share", 0.05, "share of checkouts with a declining test card")
		pointsShare  = fs.Float64("points-share", 0.2, "share of member checkouts paying partly with points")
		hotMember    = fs.Bool("hot-member", false, "contention on one account: every redeem and transfer acts for one member (setup's first, credited 1,000,000,000 points; without --setup the first known member)")
		hotProduct   = fs.Bool("hot-product", false, "flash sale: every checkout buys one unit of the catalogue's first product; sold out, checkouts are rejected 409 insufficient_stock")
		hotStock     = fs.Int64("hot-product-stock", 1_000_000, "with --hot-product and --setup: the hot product's stock")
		jsonOut      = fs.String("json", "", "also write the report as JSON to this file")
		noVerify     = fs.Bool("no-verify", false, "skip verify at the end")
		grace        = fs.Duration("verify-grace", 2*time.Minute, "grace passed to verify")
		seed         = fs.Int64("seed", 0, "random seed (0: time-based)")
		noPass       = fs.Bool("no-load-test-pass", false, "send no load-test pass: the run is subject to the server's rate limits like real traffic")
		payLatency   = fs.Int("payment-latency-ms", -1, "fault: set the payment simulator's added latency for the run (-1: leave as is)")
		declineRate  = fs.Int("decline-rate", -1, "fault: percent of charges the simulator declines for the run (-1: leave as is)")
		reserveDelay = fs.Int("reserve-delay-ms", -1, "fault: delay every stock reservation for the run (-1: leave as is)")
	)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if *hotStock < 1 {
		return fmt.Errorf("--hot-product-stock %d: want at least 1", *hotStock)
	}
	m, err := loadgen.ParseMix(*mix)
	if err != nil {
		return fmt.Errorf("--mix: %w", err)
	}
	secret, _, err := common.loadSecret()
	if err != nil {
		return err
	}
	keys, err := auth.NewKeys(secret, nil)
	if err != nil {
		return err
	}
	ttl := *duration + time.Hour
	admin, err := keys.Mint(auth.ScopeAdmin, "loadgen", ttl)
	if err != nil {
		return err
	}
	service, err := keys.Mint(auth.ScopeService, "loadgen", ttl)
	if err != nil {
		return err
	}
	var pass string
	if !*noPass {
		if pass, err = keys.MintLoadTestPass("loadgen", ttl); err != nil {
			return err
		}
	}
	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	restore, err := applyFaults(ctx, *target, admin, faultSettings{paymentLatencyMS: *payLatency, declineRate: *declineRate, reserveDelayMS: *reserveDelay})
	if err != nil {
		return err
	}
	defer restore()
	rep, err := loadgen.Run(ctx, loadgen.Config{
		Target: *target, AdminToken: admin, ServiceToken: service,
		MemberToken:  func(id string) (string, error) { return keys.Mint(auth.ScopeMember, id, ttl) },
		LoadTestPass: pass,
		Mix:          m, Rate: *rate, VUs: *vus, Duration: *duration, Requests: *requests,
		Setup: *setup, Members: *members, DeclineShare: *declineShare, PointsShare: *pointsShare,
		HotMember: *hotMember, HotProduct: *hotProduct, HotProductStock: *hotStock,
		Progress: e.stderr, Seed: *seed, Version: version(),
	})
	if err != nil {
		return err
	}
	rep.WriteTable(e.stdout)
	if *jsonOut != "" {
		f, err := os.Create(*jsonOut)
		if err != nil {
			return err
		}
		if err := rep.WriteJSON(f); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	var failures []error
	if rep.Failed() {
		failures = append(failures, fmt.Errorf("%d failed operations (%d 5xx)", rep.Total.Errors, rep.Total.Status5xx))
	}
	if !*noVerify {
		vr, err := verifyRemote(ctx, *target, admin, *grace)
		if err != nil {
			return err
		}
		if err := printVerify(e.stdout, vr); err != nil {
			failures = append(failures, err)
		}
	}
	return errors.Join(failures...)
}

type faultSettings struct {
	paymentLatencyMS, declineRate, reserveDelayMS int
}

// applyFaults sets the requested fault injections through the admin API and
// returns a function that puts back what was there before.
func applyFaults(ctx context.Context, target, token string, f faultSettings) (func(), error) {
	var restores []func()
	restore := func() {
		for _, r := range restores {
			r()
		}
	}
	set := func(path string, change func(map[string]any)) error {
		var before map[string]any
		if err := adminJSON(ctx, "GET", target+path, token, nil, &before); err != nil {
			return err
		}
		after := make(map[string]any, len(before))
		for k, v := range before {
			after[k] = v
		}
		change(after)
		if err := adminJSON(ctx, "PUT", target+path, token, after, nil); err != nil {
			return err
		}
		restores = append(restores, func() { _ = adminJSON(context.WithoutCancel(ctx), "PUT", target+path, token, before, nil) })
		return nil
	}
	if f.paymentLatencyMS >= 0 || f.declineRate >= 0 {
		err := set("/v1/admin/faults/payment", func(m map[string]any) {
			if f.paymentLatencyMS >= 0 {
				m["latency_ms"] = f.paymentLatencyMS
			}
			if f.declineRate >= 0 {
				m["decline_rate_percent"] = f.declineRate
			}
		})
		if err != nil {
			restore()
			return nil, fmt.Errorf("payment faults: %w", err)
		}
	}
	if f.reserveDelayMS >= 0 {
		if err := set("/v1/admin/faults/inventory", func(m map[string]any) { m["reserve_delay_ms"] = f.reserveDelayMS }); err != nil {
			restore()
			return nil, fmt.Errorf("inventory faults: %w", err)
		}
	}
	return restore, nil
}

func adminJSON(ctx context.Context, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
