package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/platform/jobs"
)

// ready is an After that never waits and records what it was asked to wait.
func ready(waits *[]time.Duration) func(time.Duration) <-chan time.Time {
	return func(d time.Duration) <-chan time.Time {
		*waits = append(*waits, d)
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
}

func TestEveryRunsRepeatedlyWithinJitterBounds(t *testing.T) {
	const interval = 10 * time.Second
	var waits []time.Duration
	r := jobs.New(jobs.Config{Jitter: 0.2, StartDelay: 500 * time.Millisecond, After: ready(&waits)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	r.Every(ctx, "test", interval, func(context.Context) error {
		if runs++; runs == 50 {
			cancel()
		}
		return nil
	})
	if runs != 50 {
		t.Fatalf("runs = %d, want 50 (the loop stops when ctx is cancelled)", runs)
	}
	if len(waits) != 50 {
		t.Fatalf("waits = %d, want one before each pass", len(waits))
	}
	if waits[0] < 0 || waits[0] > 500*time.Millisecond {
		t.Errorf("first delay %v, want within [0, StartDelay]", waits[0])
	}
	distinct := map[time.Duration]bool{}
	for _, w := range waits[1:] {
		if w < 8*time.Second || w > 12*time.Second {
			t.Errorf("delay %v outside interval ± 20%%", w)
		}
		distinct[w] = true
	}
	if len(distinct) < 2 {
		t.Errorf("delays %v: want jitter, got the same delay every time", waits[1:])
	}
}

func TestJitterExtremes(t *testing.T) {
	for _, tc := range []struct {
		rand        float64
		first, next time.Duration
	}{
		{0, 0, 900 * time.Millisecond},
		{0.999999, 99 * time.Millisecond, 1100 * time.Millisecond},
	} {
		var waits []time.Duration
		r := jobs.New(jobs.Config{After: ready(&waits), Rand: func() float64 { return tc.rand }})
		ctx, cancel := context.WithCancel(context.Background())
		runs := 0
		r.Every(ctx, "extremes", time.Second, func(context.Context) error {
			if runs++; runs == 2 {
				cancel()
			}
			return nil
		})
		cancel()
		// Default jitter 10%: the first pass within 100ms (the cap is the
		// smaller of StartDelay and jitter×interval), the next 0.9s–1.1s.
		if len(waits) != 2 || waits[0] < tc.first || waits[0] > 100*time.Millisecond ||
			waits[1] < tc.next-time.Millisecond || waits[1] > tc.next+time.Millisecond {
			t.Errorf("rand %v: waits %v, want first ≈ %v and next ≈ %v", tc.rand, waits, tc.first, tc.next)
		}
	}
}

func TestEveryStopsWhileWaiting(t *testing.T) {
	asked := make(chan time.Duration)
	never := make(chan time.Time)
	r := jobs.New(jobs.Config{After: func(d time.Duration) <-chan time.Time { asked <- d; return never }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Every(ctx, "idle", time.Hour, func(context.Context) error {
			t.Error("the pass ran though its timer never fired")
			return nil
		})
	}()
	<-asked
	cancel()
	<-done
}

func TestEveryNonPositiveIntervalReturns(t *testing.T) {
	r := jobs.New(jobs.Config{})
	r.Every(context.Background(), "off", 0, func(context.Context) error {
		t.Error("a job with no interval ran")
		return nil
	})
}

// TestPanicRecoveredSpanAndMetrics runs a pass that panics, one that fails and
// one that succeeds: the loop goes on after the panic, and each pass has its
// span and is counted with its outcome.
func TestPanicRecoveredSpanAndMetrics(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var waits []time.Duration
	r := jobs.New(jobs.Config{TracerProvider: tp, MeterProvider: mp, After: ready(&waits)})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	r.Every(ctx, "flaky", time.Minute, func(context.Context) error {
		runs++
		switch runs {
		case 1:
			panic("boom")
		case 2:
			return errors.New("failed")
		}
		cancel()
		return nil
	})
	if runs != 3 {
		t.Fatalf("runs = %d, want 3: the loop must survive a panic", runs)
	}

	ended := spans.Ended()
	if len(ended) != 3 {
		t.Fatalf("spans = %d, want one per pass", len(ended))
	}
	wantStatus := []codes.Code{codes.Error, codes.Error, codes.Unset}
	wantOutcome := []string{jobs.OutcomePanic, jobs.OutcomeError, jobs.OutcomeOK}
	for i, s := range ended {
		if s.Name() != "job.flaky" || s.Status().Code != wantStatus[i] {
			t.Errorf("span %d: %s status %v, want job.flaky %v", i, s.Name(), s.Status().Code, wantStatus[i])
		}
		if got := attr(s.Attributes(), "job.outcome"); got != wantOutcome[i] {
			t.Errorf("span %d: job.outcome %q, want %q", i, got, wantOutcome[i])
		}
		if got := attr(s.Attributes(), "job.name"); got != "flaky" {
			t.Errorf("span %d: job.name %q", i, got)
		}
	}
	if ev := ended[0].Events(); len(ev) != 1 || ev[0].Name != "exception" || attr(ev[0].Attributes, "exception.stacktrace") == "" {
		t.Errorf("panic span events %+v, want an exception with its stack", ev)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts, durations := map[string]int64{}, uint64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name == "godwit.job.runs" {
					for _, p := range d.DataPoints {
						name, _ := p.Attributes.Value("job.name")
						outcome, _ := p.Attributes.Value("job.outcome")
						counts[name.AsString()+"/"+outcome.AsString()] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				if m.Name == "godwit.job.duration" {
					for _, p := range d.DataPoints {
						durations += p.Count
					}
				}
			}
		}
	}
	want := map[string]int64{"flaky/panic": 1, "flaky/error": 1, "flaky/ok": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("godwit.job.runs %s = %d, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
	if durations != 3 {
		t.Errorf("godwit.job.duration count = %d, want 3", durations)
	}
}

func attr(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestUntracedCountsWithoutSpans: an untraced job makes no span of its own
// but is still counted, and a failure does not touch the caller's span.
func TestUntracedCountsWithoutSpans(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	r := jobs.New(jobs.Config{TracerProvider: tp, MeterProvider: mp})
	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	if err := r.Run(ctx, "poll", func(context.Context) error { return errors.New("failed") }, jobs.Untraced()); err == nil {
		t.Error("Run lost the pass's error")
	}
	caller.End()
	if ended := spans.Ended(); len(ended) != 1 || ended[0].Name() != "caller" || ended[0].Status().Code != codes.Unset {
		t.Errorf("spans %v: want only the caller's, untouched", ended)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "godwit.job.runs" && len(d.DataPoints) == 1 && d.DataPoints[0].Value == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Error("the untraced pass was not counted")
	}
}
