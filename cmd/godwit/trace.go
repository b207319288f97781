package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/api/client"
)

// runTrace prints one trace as a text waterfall, fetched from a server's recent-trace buffer or
// from a Jaeger query service.
func runTrace(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "trace", "trace [--target URL --token TOKEN | --jaeger URL] [-v] <trace_id>\n\n"+
		"Prints a trace as a waterfall: each span indented under its parent, a bar placed and\n"+
		"scaled on the trace's timeline, its duration, and failed spans marked ERROR. The trace\n"+
		"comes from a running server's recent-trace buffer (admin token needed) or, with\n"+
		"--jaeger, from a Jaeger query service. Database spans are folded away unless --sql.")
	target := fs.String("target", "http://127.0.0.1:8080", "base URL of the Godwit server whose recent-trace buffer holds the trace")
	token := fs.String("token", "", "admin token for --target")
	jaeger := fs.String("jaeger", "", "base URL of a Jaeger query service (e.g. http://localhost:16686); read the trace there instead")
	verbose := fs.Bool("v", false, "also print each span's key attributes and events")
	sql := fs.Bool("sql", false, "include database (sql.*) spans")
	width := fs.Int("width", 40, "width of the timeline in characters")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "godwit trace: give exactly one trace id")
		fs.Usage()
		return errUsage
	}
	id := strings.ToLower(strings.TrimSpace(fs.Arg(0)))
	if !isTraceID(id) {
		return fmt.Errorf("trace: %q is not a trace id (32 hex digits)", fs.Arg(0))
	}
	if *width < 10 || *width > 400 {
		return fmt.Errorf("--width must be between 10 and 400, not %d", *width)
	}

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		spans []wfSpan
		links wfLinks
		err   error
	)
	if *jaeger != "" {
		spans, err = fetchJaegerTrace(ctx, *jaeger, id)
		links = jaegerLinks(spans, id)
	} else {
		if *token == "" {
			return errors.New("trace: --target needs --token (an admin token), or use --jaeger")
		}
		spans, links, err = fetchBufferedTrace(ctx, *target, *token, id)
	}
	if err != nil {
		return err
	}
	o := waterfallOptions{Verbose: *verbose, SQL: *sql, Width: *width}
	if err := renderWaterfall(e.stdout, id, spans, o); err != nil {
		return err
	}
	renderLinks(e.stdout, spans, links, o)
	return nil
}

func isTraceID(s string) bool {
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// wfSpan is a span reduced to what the waterfall shows, whichever backend it came from.
type wfSpan struct {
	ID, Parent    string
	OtherRefs     []wfRef // references to spans of other traces (Jaeger's view of span links)
	Name, Service string
	Kind          string
	Start, End    time.Time
	Error         bool
	StatusMessage string
	Attributes    map[string]any
	Events        []wfEvent
}

// wfRef is a reference from a span to a span of another trace.
type wfRef struct{ TraceID, SpanID string }

type wfEvent struct {
	Name       string
	Attributes map[string]any
}

var traceClient = &http.Client{Timeout: 20 * time.Second}

// getJSON reads a JSON answer from a service outside the Godwit API (Jaeger's
// query service); Godwit's own endpoints go through api/client.
func getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := traceClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	switch {
	case res.StatusCode == http.StatusNotFound:
		return errTraceNotFound
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("%s answered %d: %.300s", u, res.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: unexpected answer: %w", u, err)
	}
	return nil
}

var errTraceNotFound = errors.New("not found")

// fetchBufferedTrace reads GET /v1/admin/traces/{id} from a Godwit server: the spans, and the
// links between this trace and others the server's buffer knows.
func fetchBufferedTrace(ctx context.Context, target, token, id string) ([]wfSpan, wfLinks, error) {
	api, err := adminAPI(target, token, traceClient)
	if err != nil {
		return nil, wfLinks{}, err
	}
	res, err := api.GetTraceWithResponse(ctx, id)
	if err != nil {
		return nil, wfLinks{}, fmt.Errorf("trace: %w", err)
	}
	switch {
	case res.StatusCode() == http.StatusNotFound:
		return nil, wfLinks{}, fmt.Errorf("trace %s is not in %s's recent-trace buffer (it keeps this process's latest traces only; in split mode ask the process that served the request, or use --jaeger)", id, target)
	case res.StatusCode() != http.StatusOK:
		return nil, wfLinks{}, fmt.Errorf("trace: %w", answerError(target, res.StatusCode(), res.ApplicationproblemJSONDefault, res.Body))
	case res.JSON200 == nil:
		return nil, wfLinks{}, fmt.Errorf("trace: unexpected answer from %s: %.300s", target, res.Body)
	}
	return fromTrace(res.JSON200), linksOf(res.JSON200), nil
}

// wfLinks are the span links between a trace and others: From, the spans of other traces
// that link into this one (work it started that finished later, such as the webhook that
// completed a checkout); To, the links this trace's spans have to other traces.
type wfLinks struct {
	From, To []wfLink
}

// wfLink is one link, seen from the trace being printed.
type wfLink struct {
	Here               string // span id in this trace
	TraceID, SpanID    string // the other side
	SpanName, RootName string // known while the other trace is buffered
	Start, End         time.Time
	Error, KnownTimes  bool
	NotBuffered        bool // the buffer no longer holds the other trace
}

func linksOf(tv *client.Trace) wfLinks {
	conv := func(ls *[]client.TraceLink) []wfLink {
		if ls == nil {
			return nil
		}
		out := make([]wfLink, 0, len(*ls))
		for _, l := range *ls {
			w := wfLink{
				Here: l.SpanId, TraceID: l.OtherTraceId, SpanID: l.OtherSpanId, NotBuffered: !l.Buffered,
				SpanName: deref(l.OtherSpanName), RootName: deref(l.OtherRootName),
				Error: deref(l.OtherError) || deref(l.OtherTraceFailed),
			}
			if l.OtherStart != nil && l.OtherEnd != nil {
				w.Start, w.End, w.KnownTimes = *l.OtherStart, *l.OtherEnd, true
			}
			out = append(out, w)
		}
		return out
	}
	return wfLinks{From: conv(tv.LinkedFrom), To: conv(tv.LinksTo)}
}

// renderLinks prints, after the waterfall, the traces that continue this one on a timeline
// shared with it (so a webhook's processing seconds after the checkout shows where it
// happened), then the traces this one continues.
func renderLinks(w io.Writer, spans []wfSpan, l wfLinks, o waterfallOptions) {
	if len(l.From) == 0 && len(l.To) == 0 {
		return
	}
	if o.Width <= 0 {
		o.Width = 40
	}
	name := func(id string) string {
		for _, s := range spans {
			if s.ID == id {
				return s.Name
			}
		}
		return "span " + id
	}
	if len(l.From) > 0 {
		t0, t1 := spans[0].Start, spans[0].End
		for _, s := range spans {
			t0, t1 = minTime(t0, s.Start), maxTime(t1, s.End)
		}
		end := t1
		for _, x := range l.From {
			if x.KnownTimes {
				end = maxTime(end, x.End)
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "continued in (traces of their own linking to this one):")
		labels := []string{"this trace"}
		for _, x := range l.From {
			labels = append(labels, "↳ "+cmp.Or(x.SpanName, "span "+x.SpanID))
		}
		col := 0
		for _, s := range labels {
			col = max(col, len([]rune(s)))
		}
		col = min(col, 48)
		pad := func(s string) string {
			r := []rune(s)
			if len(r) > col {
				return string(r[:col-1]) + "…"
			}
			return s + strings.Repeat(" ", col-len(r))
		}
		total := end.Sub(t0)
		fmt.Fprintf(w, "  %s  %s %8s\n", pad(labels[0]), bar(0, t1.Sub(t0), total, o.Width), fmtDuration(t1.Sub(t0)))
		for i, x := range l.From {
			var b strings.Builder
			b.WriteString("  " + pad(labels[i+1]) + "  ")
			if x.KnownTimes {
				fmt.Fprintf(&b, "%s %8s  +%s", bar(x.Start.Sub(t0), x.End.Sub(x.Start), total, o.Width), fmtDuration(x.End.Sub(x.Start)), fmtDuration(x.Start.Sub(t0)))
			} else {
				b.WriteString("[" + strings.Repeat("?", o.Width) + "]")
			}
			fmt.Fprintf(&b, "  trace %s", x.TraceID)
			if x.RootName != "" {
				fmt.Fprintf(&b, " (%s)", x.RootName)
			}
			fmt.Fprintf(&b, " → %s", name(x.Here))
			if x.Error {
				b.WriteString("  ERROR")
			}
			fmt.Fprintln(w, b.String())
		}
	}
	if len(l.To) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "continues (links from this trace to others):")
		for _, x := range l.To {
			other := cmp.Or(x.SpanName, "span "+x.SpanID)
			line := fmt.Sprintf("  %s → %s in trace %s", name(x.Here), other, x.TraceID)
			if x.RootName != "" {
				line += " (" + x.RootName + ")"
			}
			if x.NotBuffered {
				line += "  (not in the buffer)"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// jaegerLinks lists the links Jaeger's spans have to other traces. Jaeger's query API has
// no reverse lookup, so with --jaeger a trace shows what it continues, not what continues it.
func jaegerLinks(spans []wfSpan, id string) wfLinks {
	var l wfLinks
	for _, s := range spans {
		for _, r := range s.OtherRefs {
			if r.TraceID != id {
				l.To = append(l.To, wfLink{Here: s.ID, TraceID: r.TraceID, SpanID: r.SpanID})
			}
		}
	}
	return l
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// fromTrace reduces the server's trace (the generated client's Trace) to what
// the waterfall shows.
func fromTrace(tv *client.Trace) []wfSpan {
	out := make([]wfSpan, 0, len(tv.Spans))
	for _, s := range tv.Spans {
		w := wfSpan{
			ID: s.SpanId, Parent: deref(s.ParentSpanId), Name: s.Name, Service: s.Service, Kind: string(s.Kind),
			Start: s.Start, End: s.End, Error: s.Status.Code == client.SpanStatusCodeError, StatusMessage: deref(s.Status.Message),
		}
		if s.Attributes != nil {
			w.Attributes = *s.Attributes
		}
		if s.Events != nil {
			for _, ev := range *s.Events {
				e := wfEvent{Name: ev.Name}
				if ev.Attributes != nil {
					e.Attributes = *ev.Attributes
				}
				w.Events = append(w.Events, e)
			}
		}
		out = append(out, w)
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// The parts of Jaeger's query API answer (GET /api/traces/{id}) the waterfall needs.
type jaegerAnswer struct {
	Data   []jaegerTrace `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64       `json:"startTime"` // µs since the epoch
	Duration  int64       `json:"duration"`  // µs
	Tags      []jaegerKV  `json:"tags"`
	Logs      []jaegerLog `json:"logs"`
	ProcessID string      `json:"processID"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

type jaegerKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type jaegerLog struct {
	Fields []jaegerKV `json:"fields"`
}

// fetchJaegerTrace reads GET /api/traces/{id} from a Jaeger query service.
func fetchJaegerTrace(ctx context.Context, base, id string) ([]wfSpan, error) {
	var ans jaegerAnswer
	u := strings.TrimRight(base, "/") + "/api/traces/" + url.PathEscape(id)
	if err := getJSON(ctx, u, &ans); err != nil {
		if errors.Is(err, errTraceNotFound) {
			return nil, fmt.Errorf("trace %s: Jaeger at %s does not have it (not sampled, not yet flushed, or past retention)", id, base)
		}
		return nil, fmt.Errorf("trace: %w", err)
	}
	if len(ans.Data) == 0 {
		if len(ans.Errors) > 0 {
			return nil, fmt.Errorf("trace %s: Jaeger: %s", id, ans.Errors[0].Msg)
		}
		return nil, fmt.Errorf("trace %s: Jaeger at %s does not have it", id, base)
	}
	return fromJaeger(ans.Data[0]), nil
}

// jaegerInternalTags are the tags Jaeger's OTLP translation adds to carry span fields
// that the waterfall shows in their own right.
var jaegerInternalTags = map[string]bool{
	"span.kind": true, "otel.status_code": true, "otel.status_description": true, "error": true,
	"internal.span.format": true, "otel.scope.name": true, "otel.scope.version": true,
	"otel.library.name": true, "otel.library.version": true,
}

func fromJaeger(t jaegerTrace) []wfSpan {
	out := make([]wfSpan, 0, len(t.Spans))
	for _, s := range t.Spans {
		w := wfSpan{
			ID: s.SpanID, Name: s.OperationName, Service: t.Processes[s.ProcessID].ServiceName,
			Start: time.UnixMicro(s.StartTime).UTC(), End: time.UnixMicro(s.StartTime + s.Duration).UTC(),
			Attributes: map[string]any{},
		}
		for _, r := range s.References {
			switch {
			case r.TraceID != "" && r.TraceID != t.TraceID:
				// A span link to another trace: Jaeger shows OTel links as references.
				w.OtherRefs = append(w.OtherRefs, wfRef{TraceID: r.TraceID, SpanID: r.SpanID})
			case r.RefType == "CHILD_OF" && w.Parent == "":
				w.Parent = r.SpanID
			}
		}
		for _, kv := range s.Tags {
			switch kv.Key {
			case "span.kind":
				w.Kind, _ = kv.Value.(string)
			case "otel.status_code":
				if v, _ := kv.Value.(string); strings.EqualFold(v, "ERROR") {
					w.Error = true
				}
			case "otel.status_description":
				w.StatusMessage, _ = kv.Value.(string)
			case "error":
				if v, _ := kv.Value.(bool); v {
					w.Error = true
				}
			}
			if !jaegerInternalTags[kv.Key] {
				w.Attributes[kv.Key] = kv.Value
			}
		}
		for _, l := range s.Logs {
			ev := wfEvent{Attributes: map[string]any{}}
			for _, kv := range l.Fields {
				if kv.Key == "event" {
					ev.Name, _ = kv.Value.(string)
					continue
				}
				ev.Attributes[kv.Key] = kv.Value
			}
			w.Events = append(w.Events, ev)
		}
		out = append(out, w)
	}
	return out
}

type waterfallOptions struct {
	Verbose bool // key attributes and events under each span
	SQL     bool // keep sql.* spans
	Width   int  // timeline characters
}

// hiddenSpan reports whether a span is folded away by default: database spans from otelsql
// outnumber the business spans several times over and rarely explain a slow checkout alone.
func hiddenSpan(s wfSpan, o waterfallOptions) bool {
	return !o.SQL && strings.HasPrefix(s.Name, "sql.")
}

// renderWaterfall prints spans as an indented tree with bars on a shared timeline.
func renderWaterfall(w io.Writer, id string, spans []wfSpan, o waterfallOptions) error {
	if len(spans) == 0 {
		return fmt.Errorf("trace %s has no spans", id)
	}
	if o.Width <= 0 {
		o.Width = 40
	}
	t0, t1 := spans[0].Start, spans[0].End
	for _, s := range spans {
		if s.Start.Before(t0) {
			t0 = s.Start
		}
		if s.End.After(t1) {
			t1 = s.End
		}
	}
	rows, hidden := waterfallRows(spans, o)
	services := serviceNames(spans)
	writeWaterfallHeader(w, id, spans, t1.Sub(t0), services, hidden)
	nameCol := 0
	for _, r := range rows {
		nameCol = max(nameCol, 2*r.depth+len(r.s.Name))
	}
	nameCol = min(max(nameCol, 20), 64)
	for _, r := range rows {
		writeWaterfallRow(w, r, t0, t1.Sub(t0), nameCol, len(services) > 1, o)
	}
	return nil
}

// wfRow is one line of the waterfall: a shown span at its depth in the tree.
type wfRow struct {
	s     *wfSpan
	depth int
	svc   bool // show the service: it differs from the parent's
}

// waterfallRows orders the shown spans depth-first, children by start time,
// and counts the spans folded away.
func waterfallRows(spans []wfSpan, o waterfallOptions) (rows []wfRow, hidden int) {
	byID := make(map[string]*wfSpan, len(spans))
	for i := range spans {
		byID[spans[i].ID] = &spans[i]
	}
	children := map[string][]*wfSpan{}
	for i := range spans {
		s := &spans[i]
		if hiddenSpan(*s, o) {
			hidden++
			continue
		}
		p := visibleParent(s, byID, len(spans), o)
		children[p] = append(children[p], s)
	}
	for _, c := range children {
		slices.SortStableFunc(c, func(a, b *wfSpan) int {
			return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Name, b.Name))
		})
	}
	var walk func(parent string, depth int, parentSvc string)
	walk = func(parent string, depth int, parentSvc string) {
		for _, c := range children[parent] {
			rows = append(rows, wfRow{s: c, depth: depth, svc: c.Service != parentSvc})
			walk(c.ID, depth+1, c.Service)
		}
	}
	walk("", 0, "")
	return rows, hidden
}

// visibleParent climbs past hidden spans (and parents that never arrived) so a business span
// under a folded database span still sits under the nearest shown ancestor.
func visibleParent(s *wfSpan, byID map[string]*wfSpan, n int, o waterfallOptions) string {
	p := s.Parent
	for seen := 0; p != "" && seen < n; seen++ {
		ps, ok := byID[p]
		if !ok {
			return ""
		}
		if !hiddenSpan(*ps, o) {
			return p
		}
		p = ps.Parent
	}
	return ""
}

// serviceNames lists the services the spans came from, sorted.
func serviceNames(spans []wfSpan) []string {
	var names []string
	for _, s := range spans {
		if s.Service != "" && !slices.Contains(names, s.Service) {
			names = append(names, s.Service)
		}
	}
	slices.Sort(names)
	return names
}

func writeWaterfallHeader(w io.Writer, id string, spans []wfSpan, total time.Duration, services []string, hidden int) {
	errorsN := 0
	for _, s := range spans {
		if s.Error {
			errorsN++
		}
	}
	fmt.Fprintf(w, "trace %s  %s  %d spans", id, fmtDuration(total), len(spans))
	if errorsN > 0 {
		fmt.Fprintf(w, ", %d with errors", errorsN)
	}
	if len(services) > 0 {
		fmt.Fprintf(w, "  services: %s", strings.Join(services, ", "))
	}
	fmt.Fprintln(w)
	if hidden > 0 {
		fmt.Fprintf(w, "(%d database spans folded into their parents; --sql shows them)\n", hidden)
	}
	fmt.Fprintln(w)
}

// writeWaterfallRow prints one span: its indented name, its bar, its duration, its service
// when that changes (and there is more than one) and ERROR when it failed; with -v, its key
// attributes and events below.
func writeWaterfallRow(w io.Writer, r wfRow, t0 time.Time, total time.Duration, nameCol int, multiService bool, o waterfallOptions) {
	s := r.s
	label := strings.Repeat("  ", r.depth) + s.Name
	if len(label) > nameCol {
		label = label[:nameCol-1] + "…"
	}
	var b strings.Builder
	b.WriteString(label)
	b.WriteString(strings.Repeat(" ", max(nameCol-len([]rune(label)), 0)+2))
	b.WriteString(bar(s.Start.Sub(t0), s.End.Sub(s.Start), total, o.Width))
	fmt.Fprintf(&b, " %8s", fmtDuration(s.End.Sub(s.Start)))
	if r.svc && multiService {
		fmt.Fprintf(&b, "  [%s]", s.Service)
	}
	if s.Error {
		b.WriteString("  ERROR")
		if s.StatusMessage != "" {
			b.WriteString(" " + s.StatusMessage)
		}
	}
	fmt.Fprintln(w, b.String())
	if o.Verbose {
		pad := strings.Repeat(" ", 2*r.depth+4)
		for _, kv := range keyAttributes(s.Attributes) {
			fmt.Fprintf(w, "%s%s\n", pad, kv)
		}
		for _, ev := range s.Events {
			fmt.Fprintf(w, "%s@ %s%s\n", pad, ev.Name, eventSummary(ev))
		}
	}
}

// bar draws a span on a timeline of width characters: blank up to its start, '=' for its
// length (at least one), blank after, all between brackets.
func bar(offset, length, total time.Duration, width int) string {
	if total <= 0 {
		total = 1
	}
	from := int(int64(width) * int64(offset) / int64(total))
	n := int((int64(width)*int64(length) + int64(total) - 1) / int64(total))
	from = min(max(from, 0), width-1)
	n = min(max(n, 1), width-from)
	return "[" + strings.Repeat(" ", from) + strings.Repeat("=", n) + strings.Repeat(" ", width-from-n) + "]"
}

// fmtDuration prints a span duration the way the seed does (9.2s, 0.3s) and keeps
// precision for the short spans most of a checkout is made of.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// keyAttributePrefixes are the attributes -v prints: the business facts of the seeds and the
// few protocol attributes that explain a failure. Addresses, ports and sizes stay out.
var keyAttributePrefixes = []string{
	"checkout.", "cart.", "inventory.", "payment.", "order.", "refund.", "loyalty.", "notify.",
	"user.id", "product.id", "quantity.", "peer.service", "error.type", "http.route",
	"http.request.method", "http.response.status_code", "db.operation.name", "link.kind",
}

func keyAttributes(attrs map[string]any) []string {
	var out []string
	for k, v := range attrs {
		for _, p := range keyAttributePrefixes {
			if strings.HasPrefix(k, p) {
				out = append(out, k+"="+fmtValue(v))
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// eventSummary lists an event's attributes; for exceptions only the type and message.
func eventSummary(ev wfEvent) string {
	var parts []string
	for k, v := range ev.Attributes {
		if k == "exception.stacktrace" {
			continue
		}
		parts = append(parts, k+"="+fmtValue(v))
	}
	if len(parts) == 0 {
		return ""
	}
	slices.Sort(parts)
	return " {" + strings.Join(parts, ", ") + "}"
}

func fmtValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		if v == float64(int64(v)) {
			return fmt.Sprintf("%d", int64(v))
		}
		return fmt.Sprintf("%g", v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = fmtValue(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
