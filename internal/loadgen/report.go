package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// WriteTable writes the report as an aligned text table: a heading, one row
// per operation and a total row.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "godwit loadgen run %s against %s\n", r.RunID, r.Target)
	model := fmt.Sprintf("closed model, %d VUs", r.VUs)
	if r.Model == "open" {
		model = fmt.Sprintf("open model, %s ops/s scheduled", strconv.FormatFloat(r.Rate, 'f', -1, 64))
	}
	fmt.Fprintf(w, "%s; mix %s; %d members\n", model, FormatMix(r.Mix), r.Members)
	if hot := r.hotLine(); hot != "" {
		fmt.Fprintln(w, hot)
	}
	fmt.Fprintf(w, "load %s", fmtDuration(r.Elapsed))
	if r.Setup > 0 {
		fmt.Fprintf(w, " (setup %s)", fmtDuration(r.Setup))
	}
	fmt.Fprintf(w, ", %d operations, %d HTTP requests (%.1f/s)", r.Total.Count, r.Requests, perSecond(r.Requests, r.Elapsed))
	if r.Interrupted {
		fmt.Fprint(w, ", INTERRUPTED")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)

	// Numbers align right; names are padded so they read left-aligned.
	nameWidth := len("operation")
	for _, s := range r.Ops {
		nameWidth = max(nameWidth, len(s.Name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tcount\tops/s\tfailed\trejected\t5xx\tp50\tp90\tp99\tmax\t\n", nameWidth, "operation")
	row := func(s OpStats) {
		fmt.Fprintf(tw, "%-*s\t%d\t%.1f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n",
			nameWidth, s.Name, s.Count, s.Throughput, s.Errors, s.Rejected, s.Status5xx,
			fmtDuration(s.P50), fmtDuration(s.P90), fmtDuration(s.P99), fmtDuration(s.Max))
	}
	for _, s := range r.Ops {
		row(s)
	}
	row(r.Total)
	_ = tw.Flush()

	var codes []string
	for _, s := range append(slices.Clone(r.Ops), r.Total) {
		if len(s.ErrorsByCode) == 0 {
			continue
		}
		codes = append(codes, fmt.Sprintf("  %-*s  %s", nameWidth, s.Name, fmtCodes(s)))
	}
	if len(codes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "outcomes by code (failures marked FAILED; the rest are expected business rejections):")
		for _, c := range codes {
			fmt.Fprintln(w, c)
		}
	}
}

// hotLine names the rows a concentrated run aimed at, or is "".
func (r *Report) hotLine() string {
	var parts []string
	if r.HotMember != "" {
		parts = append(parts, "every redeem and transfer from hot member "+r.HotMember)
	}
	if r.HotProduct != "" {
		parts = append(parts, "every checkout buys hot product "+r.HotProduct)
	}
	return strings.Join(parts, "; ")
}

// fmtCodes lists an operation's codes, most frequent first.
func fmtCodes(s OpStats) string {
	keys := slices.Collect(maps.Keys(s.ErrorsByCode))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(s.ErrorsByCode[b], s.ErrorsByCode[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, s.ErrorsByCode[k])
		if s.FailuresByCode[k] > 0 {
			parts[i] += " FAILED"
		}
	}
	return strings.Join(parts, ", ")
}

// fmtDuration prints latencies at a precision a reader can use.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// opStatsJSON is OpStats on the wire: snake_case, latencies in milliseconds.
type opStatsJSON struct {
	Name           string           `json:"name"`
	Count          int64            `json:"count"`
	Errors         int64            `json:"errors"`
	Rejected       int64            `json:"rejected"`
	Throughput     float64          `json:"throughput_per_s"`
	P50            float64          `json:"p50_ms"`
	P90            float64          `json:"p90_ms"`
	P99            float64          `json:"p99_ms"`
	Max            float64          `json:"max_ms"`
	ErrorsByCode   map[string]int64 `json:"errors_by_code"`
	FailuresByCode map[string]int64 `json:"failures_by_code"`
	Status5xx      int64            `json:"status_5xx"`
}

func (s OpStats) toJSON() opStatsJSON {
	return opStatsJSON{
		Name: s.Name, Count: s.Count, Errors: s.Errors, Rejected: s.Rejected, Throughput: s.Throughput,
		P50: ms(s.P50), P90: ms(s.P90), P99: ms(s.P99), Max: ms(s.Max),
		ErrorsByCode: nonNil(s.ErrorsByCode), FailuresByCode: nonNil(s.FailuresByCode), Status5xx: s.Status5xx,
	}
}

func nonNil(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

type reportJSON struct {
	RunID       string         `json:"run_id"`
	Target      string         `json:"target"`
	Model       string         `json:"model"`
	Rate        float64        `json:"rate,omitempty"`
	VUs         int            `json:"vus"`
	Mix         map[string]int `json:"mix"`
	Started     time.Time      `json:"started"`
	Elapsed     float64        `json:"elapsed_s"`
	Setup       float64        `json:"setup_s"`
	Members     int            `json:"members"`
	HotMember   string         `json:"hot_member,omitempty"`
	HotProduct  string         `json:"hot_product,omitempty"`
	Requests    int64          `json:"requests"`
	Interrupted bool           `json:"interrupted"`
	Ops         []opStatsJSON  `json:"ops"`
	Total       opStatsJSON    `json:"total"`
}

// WriteJSON writes the report as one indented JSON document with the same
// figures as the table (latencies in milliseconds, durations in seconds).
func (r *Report) WriteJSON(w io.Writer) error {
	out := reportJSON{
		RunID: r.RunID, Target: r.Target, Model: r.Model, Rate: r.Rate, VUs: r.VUs, Mix: r.Mix,
		Started: r.Started.UTC(), Elapsed: r.Elapsed.Seconds(), Setup: r.Setup.Seconds(),
		Members: r.Members, HotMember: r.HotMember, HotProduct: r.HotProduct, Requests: r.Requests, Interrupted: r.Interrupted,
		Ops: make([]opStatsJSON, 0, len(r.Ops)), Total: r.Total.toJSON(),
	}
	for _, s := range r.Ops {
		out.Ops = append(out.Ops, s.toJSON())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("loadgen: write report: %w", err)
	}
	return nil
}

// startProgress writes a progress line every second until the returned
// function is called, which writes a last line and waits for the writer
// goroutine to finish. On a terminal the line is rewritten in place.
func (g *gen) startProgress(start time.Time) (stop func()) {
	w := g.cfg.Progress
	if w == nil {
		return func() {}
	}
	inPlace := isTerminal(w)
	lastReqs := g.c.requests.Load()
	var lastOps int64
	last := start
	line := func(now time.Time, final bool) {
		ops, fails, p99 := g.rec.tick()
		reqs := g.c.requests.Load()
		span := now.Sub(last)
		text := fmt.Sprintf("%6.1fs  %8.1f req/s  %8.1f ops/s  ops %d  errors %d  p99 %s  in-flight %d",
			now.Sub(start).Seconds(), perSecond(reqs-lastReqs, span), perSecond(ops-lastOps, span),
			ops, fails, fmtDuration(p99), g.inFlight.Load())
		last, lastReqs, lastOps = now, reqs, ops
		switch {
		case inPlace && final:
			fmt.Fprintf(w, "\r\033[K%s\n", text)
		case inPlace:
			fmt.Fprintf(w, "\r\033[K%s", text)
		default:
			fmt.Fprintln(w, text)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				line(now, false)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		line(time.Now(), true)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
