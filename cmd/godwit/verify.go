package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/godwit-dev/godwit/api/client"
	"github.com/godwit-dev/godwit/internal/app"
)

// errViolations makes `godwit verify` exit non-zero after printing the list.
var errViolations = errors.New("invariant violations found")

func runVerify(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "verify", "verify [--db DSN | --target URL --token TOKEN] [flags]\n\n"+
		"Checks that the ledger sums to zero, cached balances equal postings, lots cover\n"+
		"balances, no hold, reservation or checkout is left open past its expiry, stock is\n"+
		"conserved, every paid order has one live charge and every charge an order or refund,\n"+
		"and every confirmed order one confirmation. Exits 1 listing any violation.")
	var common commonFlags
	common.register(fs)
	common.registerPool(fs)
	target := fs.String("target", "", "ask a running server (its admin endpoint) instead of opening the database")
	token := fs.String("token", "", "admin token for --target")
	grace := fs.Duration("grace", app.DefaultVerifyGrace, "how far past its expiry an open hold, reservation or checkout is tolerated")
	wait := fs.Duration("wait", 0, "wait up to this long for work in flight (checkouts whose owner holds a lease) to settle before reporting")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if *target == "" {
		if err := common.checkPool(0); err != nil {
			return err
		}
	}
	check := func() (app.VerifyReport, error) {
		if *target != "" {
			return verifyRemote(ctx, *target, *token, *grace)
		}
		return verifyLocal(ctx, e, common, *grace)
	}
	rep, err := settled(ctx, *wait, check)
	if err != nil {
		return err
	}
	return printVerify(e.stdout, rep)
}

// settled runs check until nothing is in flight or wait has passed, and
// returns the last report: work in flight settles on its own (its owner
// finishes it, or its retry or the recovery pass takes it over).
func settled(ctx context.Context, wait time.Duration, check func() (app.VerifyReport, error)) (app.VerifyReport, error) {
	deadline := time.Now().Add(wait)
	for {
		rep, err := check()
		if err != nil || len(rep.InFlight) == 0 || !time.Now().Before(deadline) {
			return rep, err
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(min(500*time.Millisecond, time.Until(deadline))):
		}
	}
}

func printVerify(w io.Writer, rep app.VerifyReport) error {
	for _, f := range rep.InFlight {
		fmt.Fprintf(w, "  in flight: %s\n", f)
	}
	if rep.OK {
		fmt.Fprintf(w, "verify: ok, no violations (%.0f ms)\n", rep.TookMS)
		return nil
	}
	fmt.Fprintf(w, "verify: %d violation(s):\n", len(rep.Violations))
	for _, v := range rep.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
	return errViolations
}

// verifyLocal checks the database directly, with telemetry from OTEL_* so a
// run from cron is a trace (logs only from warnings up: stdout is the report).
// It neither mints nor checks a token, so it signs with a throwaway secret
// unless --secret gives one: reading <data-dir>/secret would create one there
// when missing, and a check run against PostgreSQL from any directory would
// leave a stray godwit-data/secret behind.
func verifyLocal(ctx context.Context, e env, common commonFlags, grace time.Duration) (app.VerifyReport, error) {
	secret := make([]byte, 32)
	if common.Secret != "" {
		var err error
		if secret, _, err = common.LoadSecret(); err != nil {
			return app.VerifyReport{}, err
		}
	} else if _, err := rand.Read(secret); err != nil {
		return app.VerifyReport{}, fmt.Errorf("verify: %w", err)
	}
	obs := commandTelemetry(e)
	obs.LogLevel = slog.LevelWarn
	return app.VerifyDatabase(ctx, app.Config{DSN: common.DatabaseDSN(), DBMaxConns: common.MaxConns, DataDir: common.DataDir, Secret: secret, Observe: obs}, grace)
}

func verifyRemote(ctx context.Context, target, token string, grace time.Duration) (app.VerifyReport, error) {
	var rep app.VerifyReport
	if token == "" {
		return rep, errors.New("--target needs --token (an admin token)")
	}
	api, err := adminAPI(target, token, http.DefaultClient)
	if err != nil {
		return rep, err
	}
	g := grace.String()
	res, err := api.VerifyWithResponse(ctx, &client.VerifyParams{Grace: &g})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if res.StatusCode() != http.StatusOK {
		return rep, fmt.Errorf("verify: %w", answerError(target, res.StatusCode(), res.ApplicationproblemJSONDefault, res.Body))
	}
	v := res.JSON200
	if v == nil {
		return rep, fmt.Errorf("verify: bad answer from %s: %.300s", target, res.Body)
	}
	rep = app.VerifyReport{OK: v.Ok, Violations: v.Violations, TookMS: float64(v.TookMs)}
	if v.InFlight != nil {
		rep.InFlight = *v.InFlight
	}
	if v.SettlesBy != nil {
		rep.SettlesBy = *v.SettlesBy
	}
	return rep, nil
}
