package telemetry

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const (
	defaultMaxTraces        = 2000
	defaultMaxSpansPerTrace = 1000

	defaultRecentLimit = 50
	maxRecentLimit     = 500

	// maxLinksPerTrace bounds the links to other traces one buffered trace remembers for
	// the "linked from" index; a trace with more keeps the first ones.
	maxLinksPerTrace = 64
)

// TraceBuffer is a span processor that keeps this process's most recent traces in memory, so the
// built-in trace view works with no collector. It is bounded in both directions: the oldest trace
// is evicted when MaxTraces is reached, and spans beyond MaxSpansPerTrace are counted, not kept.
//
// OnEnd runs on every request's hot path, so it only takes one mutex and stores the span snapshot
// the SDK hands it; turning spans into views happens when someone asks.
type TraceBuffer struct {
	maxTraces, maxSpans int

	mu     sync.Mutex
	traces map[trace.TraceID]*bufferedTrace
	order  []trace.TraceID // insertion order, used as a ring once full
	oldest int             // index in order of the next trace to evict, once full
}

type bufferedTrace struct {
	spans    []sdktrace.ReadOnlySpan
	dropped  int
	links    []outLink // links from this trace's spans to spans of other traces
	root     sdktrace.ReadOnlySpan
	rootRank int
	start    time.Time
	end      time.Time
	failed   bool
}

// outLink is one span link from a buffered span to a span of another trace.
type outLink struct {
	from sdktrace.ReadOnlySpan
	to   trace.SpanContext
}

// Root ranks: a span with no parent beats one whose parent lives in another process, which beats
// any other span (whose parent was dropped or has not ended yet).
const (
	rankChild = iota
	rankRemoteChild
	rankRoot
)

func rootRank(s sdktrace.ReadOnlySpan) int {
	switch p := s.Parent(); {
	case !p.IsValid():
		return rankRoot
	case p.IsRemote():
		return rankRemoteChild
	}
	return rankChild
}

var _ sdktrace.SpanProcessor = (*TraceBuffer)(nil)

// NewTraceBuffer returns a buffer holding at most maxTraces traces of at most maxSpansPerTrace
// spans each; non-positive values select the defaults (2000 and 1000).
func NewTraceBuffer(maxTraces, maxSpansPerTrace int) *TraceBuffer {
	if maxTraces <= 0 {
		maxTraces = defaultMaxTraces
	}
	if maxSpansPerTrace <= 0 {
		maxSpansPerTrace = defaultMaxSpansPerTrace
	}
	return &TraceBuffer{
		maxTraces: maxTraces,
		maxSpans:  maxSpansPerTrace,
		traces:    make(map[trace.TraceID]*bufferedTrace),
	}
}

// OnStart does nothing: only ended spans are shown.
func (b *TraceBuffer) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd records an ended span. The SDK passes an immutable snapshot, so keeping it is safe.
func (b *TraceBuffer) OnEnd(s sdktrace.ReadOnlySpan) {
	id := s.SpanContext().TraceID()
	rank := rootRank(s)
	start, end := s.StartTime(), s.EndTime()
	failed := s.Status().Code == codes.Error

	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.traces[id]
	if t == nil {
		t = &bufferedTrace{start: start, end: end}
		b.insert(id, t)
	}
	if start.Before(t.start) {
		t.start = start
	}
	if end.After(t.end) {
		t.end = end
	}
	t.failed = t.failed || failed
	// Links to other traces are remembered apart from the spans, so a trace can list
	// the traces that continue it (a webhook completing a checkout) without a scan of
	// every span, and even when this span itself is not kept.
	for _, l := range s.Links() {
		if len(t.links) >= maxLinksPerTrace {
			break
		}
		if l.SpanContext.IsValid() && l.SpanContext.TraceID() != id {
			t.links = append(t.links, outLink{from: s, to: l.SpanContext})
		}
	}

	switch {
	case len(t.spans) < b.maxSpans:
		t.spans = append(t.spans, s)
	case rank == rankRoot && t.rootRank < rankRoot:
		// The root ends last, so a huge trace would otherwise lose exactly the span that names
		// it. Give it the slot of the latest-stored span instead.
		t.spans[len(t.spans)-1] = s
		t.dropped++
	default:
		t.dropped++
		return
	}
	if t.root == nil || rank > t.rootRank || (rank == t.rootRank && start.Before(t.root.StartTime())) {
		t.root, t.rootRank = s, rank
	}
}

// insert adds a new trace, evicting the oldest when full. Must hold b.mu.
func (b *TraceBuffer) insert(id trace.TraceID, t *bufferedTrace) {
	b.traces[id] = t
	if len(b.order) < b.maxTraces {
		b.order = append(b.order, id)
		return
	}
	delete(b.traces, b.order[b.oldest])
	b.order[b.oldest] = id
	b.oldest = (b.oldest + 1) % b.maxTraces
}

// Shutdown does nothing: the buffer stays readable after the provider stops.
func (b *TraceBuffer) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing: spans are visible as soon as they end.
func (b *TraceBuffer) ForceFlush(context.Context) error { return nil }

// Len reports how many traces the buffer holds.
func (b *TraceBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.traces)
}

// TraceView is one trace as served to the trace view, spans sorted by start time.
type TraceView struct {
	TraceID      string     `json:"trace_id"`
	Spans        []SpanView `json:"spans"`
	DroppedSpans int        `json:"dropped_spans"`
	// LinkedFrom lists the buffered spans of other traces that link to a span of this
	// one: work this trace started that finished asynchronously (a webhook's processing
	// completing a checkout). Sorted by start time.
	LinkedFrom []TraceLinkView `json:"linked_from,omitempty"`
	// LinksTo lists the links this trace's spans have to other traces, with the other
	// span's name and times when that trace is buffered too. Sorted by start time.
	LinksTo []TraceLinkView `json:"links_to,omitempty"`
}

// TraceLinkView is a span link between this trace and another, seen from this trace:
// SpanID names the span in this trace, the Other* fields the span in the other one.
// The other span's name, times and status are known only while its trace is buffered
// (Buffered).
type TraceLinkView struct {
	SpanID           string     `json:"span_id"`
	OtherTraceID     string     `json:"other_trace_id"`
	OtherSpanID      string     `json:"other_span_id"`
	Buffered         bool       `json:"buffered"`
	OtherSpanName    string     `json:"other_span_name,omitempty"`
	OtherRootName    string     `json:"other_root_name,omitempty"`
	OtherStart       *time.Time `json:"other_start,omitempty"`
	OtherEnd         *time.Time `json:"other_end,omitempty"`
	OtherDurationMS  float64    `json:"other_duration_ms,omitempty"`
	OtherError       bool       `json:"other_error,omitempty"`
	OtherTraceEnd    *time.Time `json:"other_trace_end,omitempty"`
	OtherTraceFailed bool       `json:"other_trace_failed,omitempty"`
}

// SpanView is one span of a TraceView.
type SpanView struct {
	TraceID      string         `json:"trace_id"`
	SpanID       string         `json:"span_id"`
	ParentSpanID string         `json:"parent_span_id,omitempty"`
	Name         string         `json:"name"`
	Kind         string         `json:"kind"`    // "server", "client", "internal", "producer", "consumer"
	Service      string         `json:"service"` // the resource's service.name
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	DurationMS   float64        `json:"duration_ms"`
	Status       StatusView     `json:"status"`
	Attributes   map[string]any `json:"attributes,omitempty"`
	Events       []EventView    `json:"events,omitempty"`
	Links        []LinkView     `json:"links,omitempty"`
}

// StatusView is a span status; Code is "unset", "ok" or "error".
type StatusView struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// EventView is a span event, such as a business milestone or a recorded exception.
type EventView struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// LinkView points at a span in another trace.
type LinkView struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

// Trace returns the buffered spans of one trace, or false if the trace is unknown or evicted.
func (b *TraceBuffer) Trace(id trace.TraceID) (TraceView, bool) {
	b.mu.Lock()
	t, ok := b.traces[id]
	var (
		spans             []sdktrace.ReadOnlySpan
		dropped           int
		linkedFrom, links []TraceLinkView
	)
	if ok {
		spans, dropped = slices.Clone(t.spans), t.dropped
		linkedFrom, links = b.linkedFrom(id), b.linksTo(t)
	}
	b.mu.Unlock()
	if !ok {
		return TraceView{}, false
	}

	slices.SortStableFunc(spans, func(a, b sdktrace.ReadOnlySpan) int {
		return a.StartTime().Compare(b.StartTime())
	})
	v := TraceView{TraceID: id.String(), Spans: make([]SpanView, len(spans)), DroppedSpans: dropped}
	for i, s := range spans {
		v.Spans[i] = spanView(s)
	}
	v.LinkedFrom, v.LinksTo = linkedFrom, links
	return v, true
}

// linkedFrom lists the links from other buffered traces into trace id. Must hold b.mu.
// It walks the traces' link lists, not their spans: few traces have any.
func (b *TraceBuffer) linkedFrom(id trace.TraceID) []TraceLinkView {
	var out []TraceLinkView
	for other, t := range b.traces {
		for _, l := range t.links {
			if l.to.TraceID() != id {
				continue
			}
			v := TraceLinkView{SpanID: l.to.SpanID().String(), OtherTraceID: other.String()}
			describeOther(&v, t, l.from)
			out = append(out, v)
		}
	}
	sortLinks(out)
	return out
}

// linksTo lists t's links to other traces. Must hold b.mu.
func (b *TraceBuffer) linksTo(t *bufferedTrace) []TraceLinkView {
	var out []TraceLinkView
	for _, l := range t.links {
		v := TraceLinkView{SpanID: l.from.SpanContext().SpanID().String(), OtherTraceID: l.to.TraceID().String(), OtherSpanID: l.to.SpanID().String()}
		if ot, ok := b.traces[l.to.TraceID()]; ok {
			var target sdktrace.ReadOnlySpan
			for _, s := range ot.spans {
				if s.SpanContext().SpanID() == l.to.SpanID() {
					target = s
					break
				}
			}
			describeOther(&v, ot, target)
		}
		out = append(out, v)
	}
	sortLinks(out)
	return out
}

// describeOther fills in what the buffer knows of the other side of a link: its trace
// ot and, when kept, its span s.
func describeOther(v *TraceLinkView, ot *bufferedTrace, s sdktrace.ReadOnlySpan) {
	v.Buffered = true
	if ot.root != nil {
		v.OtherRootName = ot.root.Name()
	}
	end := ot.end
	v.OtherTraceEnd, v.OtherTraceFailed = &end, ot.failed
	if s == nil {
		return
	}
	start, stop := s.StartTime(), s.EndTime()
	v.OtherSpanID = s.SpanContext().SpanID().String()
	v.OtherSpanName = s.Name()
	v.OtherStart, v.OtherEnd = &start, &stop
	v.OtherDurationMS = durationMS(stop.Sub(start))
	v.OtherError = s.Status().Code == codes.Error
}

func sortLinks(ls []TraceLinkView) {
	slices.SortStableFunc(ls, func(a, b TraceLinkView) int {
		switch {
		case a.OtherStart == nil && b.OtherStart == nil:
			return strings.Compare(a.OtherTraceID, b.OtherTraceID)
		case a.OtherStart == nil:
			return 1
		case b.OtherStart == nil:
			return -1
		}
		return a.OtherStart.Compare(*b.OtherStart)
	})
}

func spanView(s sdktrace.ReadOnlySpan) SpanView {
	v := SpanView{
		TraceID:    s.SpanContext().TraceID().String(),
		SpanID:     s.SpanContext().SpanID().String(),
		Name:       s.Name(),
		Kind:       s.SpanKind().String(),
		Service:    serviceName(s),
		Start:      s.StartTime(),
		End:        s.EndTime(),
		DurationMS: durationMS(s.EndTime().Sub(s.StartTime())),
		Status:     StatusView{Code: statusCode(s.Status().Code), Message: s.Status().Description},
		Attributes: attrMap(s.Attributes()),
	}
	if p := s.Parent(); p.IsValid() {
		v.ParentSpanID = p.SpanID().String()
	}
	for _, e := range s.Events() {
		v.Events = append(v.Events, EventView{Name: e.Name, Time: e.Time, Attributes: attrMap(e.Attributes)})
	}
	for _, l := range s.Links() {
		v.Links = append(v.Links, LinkView{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String()})
	}
	return v
}

// RecentFilter selects traces for Recent. The zero value returns the 50 newest traces.
type RecentFilter struct {
	// SpanName keeps traces holding a span, the root or any other, whose name
	// starts with it: "checkout.process" finds checkouts, whose root is the
	// server span "POST /v1/checkout"; "POST /v1/" finds API requests.
	SpanName    string
	ErrorsOnly  bool          // keep traces with at least one span in error
	MinDuration time.Duration // keep traces lasting at least this long; with SpanName, whose matching span does
	Limit       int           // default 50, at most 500
}

// TraceSummary is one row of the recent-traces list.
type TraceSummary struct {
	TraceID      string    `json:"trace_id"`
	RootName     string    `json:"root_name"`
	Service      string    `json:"service"`
	Start        time.Time `json:"start"`
	DurationMS   float64   `json:"duration_ms"` // first span start to last span end
	SpanCount    int       `json:"span_count"`  // spans kept in the buffer
	DroppedSpans int       `json:"dropped_spans"`
	Error        bool      `json:"error"`
}

// Recent returns summaries of the buffered traces matching f, newest first.
func (b *TraceBuffer) Recent(f RecentFilter) []TraceSummary {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultRecentLimit
	}
	limit = min(limit, maxRecentLimit)

	b.mu.Lock()
	out := make([]TraceSummary, 0, min(limit, len(b.traces)))
	for id, t := range b.traces {
		if f.ErrorsOnly && !t.failed {
			continue
		}
		if f.SpanName == "" && t.end.Sub(t.start) < f.MinDuration {
			continue
		}
		if f.SpanName != "" && !t.holds(f.SpanName, f.MinDuration) {
			continue
		}
		out = append(out, TraceSummary{
			TraceID:      id.String(),
			RootName:     t.root.Name(),
			Service:      serviceName(t.root),
			Start:        t.start,
			DurationMS:   durationMS(t.end.Sub(t.start)),
			SpanCount:    len(t.spans),
			DroppedSpans: t.dropped,
			Error:        t.failed,
		})
	}
	b.mu.Unlock()

	slices.SortFunc(out, func(a, b TraceSummary) int { return b.Start.Compare(a.Start) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// holds reports whether t has a span whose name starts with name and that
// lasted at least minDuration.
func (t *bufferedTrace) holds(name string, minDuration time.Duration) bool {
	for _, s := range t.spans {
		if strings.HasPrefix(s.Name(), name) && s.EndTime().Sub(s.StartTime()) >= minDuration {
			return true
		}
	}
	return false
}

func serviceName(s sdktrace.ReadOnlySpan) string {
	if r := s.Resource(); r != nil {
		if v, ok := r.Set().Value(semconv.ServiceNameKey); ok {
			return v.AsString()
		}
	}
	return ""
}

func statusCode(c codes.Code) string {
	switch c {
	case codes.Ok:
		return "ok"
	case codes.Error:
		return "error"
	}
	return "unset"
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func attrMap(kvs []attribute.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}
