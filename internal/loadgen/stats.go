package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to one hour, to three
// significant digits.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(us, histLowest)
	us = min(us, histHighest)
	_ = h.RecordValue(us) // in range by construction
}

// opRecord accumulates one operation's results.
type opRecord struct {
	hist      *hdrhistogram.Histogram
	count     int64
	failures  int64
	rejected  int64
	status5xx int64
	codes     map[string]int64 // every non-2xx outcome
	failCodes map[string]int64 // the subset that counted as failures
}

func newOpRecord() *opRecord {
	return &opRecord{hist: newHist(), codes: map[string]int64{}, failCodes: map[string]int64{}}
}

func (r *opRecord) add(o outcome, latency time.Duration, measured bool) {
	r.count++
	if measured {
		recordLatency(r.hist, latency)
	}
	if o.status >= 500 {
		r.status5xx++
	}
	switch o.class {
	case classRejected:
		r.rejected++
		r.codes[o.code]++
	case classFailed:
		r.failures++
		r.codes[o.code]++
		r.failCodes[o.code]++
	}
}

// recorder collects results from every in-flight operation.
type recorder struct {
	mu  sync.Mutex
	ops map[string]*opRecord
	// since the last progress tick, all operations together
	window *hdrhistogram.Histogram
	count  int64
	fails  int64
}

func newRecorder(names []string) *recorder {
	r := &recorder{ops: map[string]*opRecord{}, window: newHist()}
	for _, n := range names {
		r.ops[n] = newOpRecord()
	}
	return r
}

// record adds a completed operation (measured is false for dropped arrivals,
// which have no latency).
func (r *recorder) record(name string, o outcome, latency time.Duration, measured bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op, ok := r.ops[name]
	if !ok {
		op = newOpRecord()
		r.ops[name] = op
	}
	op.add(o, latency, measured)
	if measured {
		recordLatency(r.window, latency)
	}
	r.count++
	if o.class == classFailed {
		r.fails++
	}
}

// tick returns the totals so far and the p99 of the operations completed
// since the previous tick, and starts a new window.
func (r *recorder) tick() (count, fails int64, p99 time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p99 = time.Duration(r.window.ValueAtQuantile(99)) * time.Microsecond
	r.window.Reset()
	return r.count, r.fails, p99
}

// OpStats summarises one operation (or, as Report.Total, all of them).
type OpStats struct {
	Name string
	// Count is the operations completed, whatever their outcome, plus the
	// arrivals the open model dropped.
	Count int64
	// Errors are the failures: any 5xx, transport error, timeout, unexpected
	// 4xx (400, 401, 403, 404, 429, …), malformed success body, and dropped
	// arrivals (client_overload).
	Errors int64
	// Rejected are expected business outcomes (402 payment_declined,
	// 409 insufficient_stock, 422 insufficient_points, …): counted, not failures.
	Rejected int64
	// Throughput is Count per second of the load phase.
	Throughput float64
	// Latency percentiles from an HDR histogram (3 significant digits). In the
	// open model latency runs from the operation's scheduled start, so time
	// spent waiting behind a slow server is included.
	P50, P90, P99, Max time.Duration
	// ErrorsByCode counts every non-2xx outcome (rejections and failures) by
	// problem code; responses without one are "http_<status>".
	ErrorsByCode map[string]int64
	// FailuresByCode is the part of ErrorsByCode that counted as Errors.
	FailuresByCode map[string]int64
	// Status5xx counts responses with a 5xx status.
	Status5xx int64
}

func (r *opRecord) stats(name string, elapsed time.Duration) OpStats {
	s := OpStats{
		Name:           name,
		Count:          r.count,
		Errors:         r.failures,
		Rejected:       r.rejected,
		ErrorsByCode:   make(map[string]int64, len(r.codes)),
		FailuresByCode: make(map[string]int64, len(r.failCodes)),
		Status5xx:      r.status5xx,
	}
	if elapsed > 0 {
		s.Throughput = float64(r.count) / elapsed.Seconds()
	}
	if r.hist.TotalCount() > 0 {
		s.P50 = time.Duration(r.hist.ValueAtQuantile(50)) * time.Microsecond
		s.P90 = time.Duration(r.hist.ValueAtQuantile(90)) * time.Microsecond
		s.P99 = time.Duration(r.hist.ValueAtQuantile(99)) * time.Microsecond
		s.Max = time.Duration(r.hist.Max()) * time.Microsecond
	}
	for k, v := range r.codes {
		s.ErrorsByCode[k] = v
	}
	for k, v := range r.failCodes {
		s.FailuresByCode[k] = v
	}
	return s
}

// merge adds o into r.
func (r *opRecord) merge(o *opRecord) {
	r.hist.Merge(o.hist)
	r.count += o.count
	r.failures += o.failures
	r.rejected += o.rejected
	r.status5xx += o.status5xx
	for k, v := range o.codes {
		r.codes[k] += v
	}
	for k, v := range o.failCodes {
		r.failCodes[k] += v
	}
}

// summary returns per-operation stats in report order (only operations that
// were in the mix or produced results) and the total.
func (r *recorder) summary(inMix func(string) bool, elapsed time.Duration) ([]OpStats, OpStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := newOpRecord()
	var ops []OpStats
	for _, name := range Operations() {
		op := r.ops[name]
		if op == nil || (op.count == 0 && !inMix(name)) {
			continue
		}
		ops = append(ops, op.stats(name, elapsed))
		total.merge(op)
	}
	return ops, total.stats("total", elapsed)
}
