package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
)

func runExpire(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "expire", "expire [flags]\n\n"+
		"Runs the loyalty points expiry job once (the same job serve runs every --expiry-interval)\n"+
		"and prints a summary. Safe to run while servers are running, and twice: points never\n"+
		"expire twice. It writes: expired points are gone. To see first what a run would expire,\n"+
		"add --dry-run, which reports the same figures and changes nothing.")
	var common commonFlags
	common.register(fs)
	common.registerPool(fs)
	var (
		programFile = fs.String("program", "", "loyalty program file (default: the built-in program)")
		chunk       = fs.Int("chunk-size", app.DefaultExpireChunk, "members read per query and expired per transaction")
		asOf        = fs.String("as-of", "", "expire as of this RFC 3339 time instead of now, to catch up after downtime; this writes, like any run (with --dry-run: what would expire by then)")
		dryRun      = fs.Bool("dry-run", false, "report what would expire, per the program's expiry policy (accounts, points), and write nothing")
	)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(e.stderr, "godwit expire: takes no arguments")
		return errUsage
	}
	if err := common.checkPool(0); err != nil {
		return err
	}
	if *chunk <= 0 {
		return fmt.Errorf("--chunk-size must be positive, not %d", *chunk)
	}
	var now time.Time
	if *asOf != "" {
		t, err := time.Parse(time.RFC3339Nano, *asOf)
		if err != nil {
			return fmt.Errorf("--as-of: %w", err)
		}
		now = t
	}
	bar := newProgress(e.stderr)
	start := time.Now()
	rep, err := app.RunExpire(ctx, app.ExpireConfig{
		DSN: common.DatabaseDSN(), DBMaxConns: common.MaxConns, ProgramFile: *programFile, AsOf: now, ChunkSize: *chunk, Progress: bar.update, DryRun: *dryRun,
		Observe: commandTelemetry(e),
	})
	bar.finish()
	if err != nil {
		return err
	}
	if rep.DryRun {
		fmt.Fprintf(e.stdout, "Dry run, nothing written: expiry (%s policy, %d months) as of %s\n", rep.Policy, rep.ExpiryMonths, rep.AsOf.Format(time.RFC3339))
		fmt.Fprintf(e.stdout, "  members examined:         %d\n", rep.Candidates)
		fmt.Fprintf(e.stdout, "  accounts that would lose: %d\n", rep.AccountsAffected)
		fmt.Fprintf(e.stdout, "  points that would expire: %d\n", rep.PointsExpired)
		fmt.Fprintf(e.stdout, "  took:                     %s\n", time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(e.stdout, "Expiry (%s policy, %d months) as of %s\n", rep.Policy, rep.ExpiryMonths, rep.AsOf.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "  members examined:  %d\n", rep.Candidates)
	fmt.Fprintf(e.stdout, "  accounts affected: %d\n", rep.AccountsAffected)
	fmt.Fprintf(e.stdout, "  points expired:    %d\n", rep.PointsExpired)
	fmt.Fprintf(e.stdout, "  took:              %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// commandTelemetry is the telemetry of a one-shot command: OTEL_* from the
// environment, like serve; text logs on stderr; a few seconds to flush at exit,
// which a batch run can afford and its trace is worth.
func commandTelemetry(e env) app.TelemetryConfig {
	return app.TelemetryConfig{
		ServiceVersion: version(), LogFormat: "text", LogOutput: e.stderr, Getenv: e.getenv,
		FlushTimeout: 5 * time.Second,
	}
}

// progress draws a progress bar on a terminal, or prints a line every few
// seconds (and at the end) when stderr is a file or pipe.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	last     time.Time
	drawn    bool
	interval time.Duration
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, interval: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.interval = true, 100*time.Millisecond
		}
	}
	return p
}

func (p *progress) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) >= p.interval || done == total {
		p.last = now
		p.draw(done, total)
	}
}

func (p *progress) draw(done, total int) {
	if total < done {
		total = done
	}
	pct := 100
	if total > 0 {
		pct = done * 100 / total
	}
	if !p.tty {
		fmt.Fprintf(p.w, "expire: %d/%d members (%d%%)\n", done, total, pct)
		return
	}
	const width = 30
	filled := pct * width / 100
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d members", strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, done, total)
	p.drawn = true
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
