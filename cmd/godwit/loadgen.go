package main

import (
	"context"
	"errors"
	"fmt"
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
		"the baggage synthetic=true. Exits 1 on any 5xx, transport error or invariant violation.")
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
		jsonOut      = fs.String("json", "", "also write the report as JSON to this file")
		noVerify     = fs.Bool("no-verify", false, "skip verify at the end")
		grace        = fs.Duration("verify-grace", 2*time.Minute, "grace passed to verify")
		seed         = fs.Int64("seed", 0, "random seed (0: time-based)")
	)
	if err := parseFlags(e, fs, args); err != nil {
		return err
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
	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	rep, err := loadgen.Run(ctx, loadgen.Config{
		Target: *target, AdminToken: admin, ServiceToken: service,
		MemberToken: func(id string) (string, error) { return keys.Mint(auth.ScopeMember, id, ttl) },
		Mix:         m, Rate: *rate, VUs: *vus, Duration: *duration, Requests: *requests,
		Setup: *setup, Members: *members, DeclineShare: *declineShare, PointsShare: *pointsShare,
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
