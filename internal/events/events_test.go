package events_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

var at = time.Date(2026, 5, 1, 9, 30, 0, 123456000, time.UTC)

func tracedContext(t *testing.T) context.Context {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "cause")
	t.Cleanup(func() { span.End() })
	return ctx
}

// TestCloudEventsRequiredAttributes holds the JSON form to the CloudEvents
// 1.0 specification: the REQUIRED context attributes id, source, specversion
// ("1.0") and type are non-empty strings; the OPTIONAL ones used here
// (subject, time as RFC 3339, datacontenttype with data as JSON) are well
// formed; extension attribute names are lower-case letters and digits of at
// most 20 characters; traceparent is the W3C form of the causing span.
func TestCloudEventsRequiredAttributes(t *testing.T) {
	ctx := tracedContext(t)
	e, err := events.New(ctx, events.PointsEarned, events.SourceLoyalty, "m-1", at, map[string]any{"member_id": "m-1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, attr := range []string{"id", "source", "specversion", "type"} {
		if s, ok := m[attr].(string); !ok || s == "" {
			t.Errorf("required attribute %s = %v, want a non-empty string", attr, m[attr])
		}
	}
	if m["specversion"] != "1.0" {
		t.Errorf("specversion %v, want 1.0", m["specversion"])
	}
	if ts, _ := m["time"].(string); ts == "" {
		t.Error("no time")
	} else if got, err := time.Parse(time.RFC3339, ts); err != nil || !got.Equal(at) {
		t.Errorf("time %q (%v), want %s in RFC 3339", ts, err, at)
	}
	if m["datacontenttype"] != "application/json" {
		t.Errorf("datacontenttype %v", m["datacontenttype"])
	}
	if _, ok := m["data"].(map[string]any); !ok {
		t.Errorf("data %v is not a JSON object", m["data"])
	}
	name := regexp.MustCompile(`^[a-z0-9]{1,20}$`)
	for k := range m {
		if !name.MatchString(k) {
			t.Errorf("attribute name %q breaks the naming rule", k)
		}
	}
	tp, _ := m["traceparent"].(string)
	if !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`).MatchString(tp) {
		t.Errorf("traceparent %q is not a W3C traceparent", tp)
	}
	// The event parses back to itself, and its trace context continues the cause.
	var back events.Event
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != e.ID || back.Type != e.Type || back.Source != e.Source || back.Subject != e.Subject ||
		!back.Time.Equal(e.Time) || string(back.Data) != string(e.Data) || back.TraceParent != e.TraceParent {
		t.Errorf("round trip: %+v, want %+v", back, e)
	}
	// Parsing refuses an event without a required attribute or of another spec version.
	for _, bad := range []string{
		`{"specversion":"1.0","source":"/x","type":"t"}`,
		`{"specversion":"0.3","id":"1","source":"/x","type":"t"}`,
		`{"specversion":"1.0","id":"1","type":"t"}`,
	} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("parsed %s", bad)
		}
	}
}

// TestSchemasCoverCatalogue: every catalogue type has a schema that names it,
// every schema file is a catalogue type, and the schemas accept a well-formed
// event of their type and refuse a wrong one.
func TestSchemasCoverCatalogue(t *testing.T) {
	files, err := fs.Glob(events.Schemas, "schemas/*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(events.Types) {
		t.Errorf("%d schema files for %d types", len(files), len(events.Types))
	}
	for _, f := range files {
		if typ := strings.TrimSuffix(path.Base(f), ".schema.json"); !events.IsType(typ) {
			t.Errorf("schema %s is of no catalogue type", f)
		}
	}
	ctx := tracedContext(t)
	good, err := events.New(ctx, events.MemberCreated, events.SourceLoyalty, "m-1", at, events.MemberCreatedData{MemberID: "m-1", Tier: "blue"})
	if err != nil {
		t.Fatal(err)
	}
	if err := eventstest.Validate(good); err != nil {
		t.Errorf("a well-formed member.created: %v", err)
	}
	for name, bad := range map[string]events.Event{
		"unknown data field": withData(good, `{"member_id":"m-1","tier":"blue","email":"a@example.com"}`),
		"missing data field": withData(good, `{"member_id":"m-1"}`),
		"wrong source":       func() events.Event { e := good; e.Source = "/elsewhere"; return e }(),
		"no subject":         func() events.Event { e := good; e.Subject = ""; return e }(),
		"bad id":             func() events.Event { e := good; e.ID = "42"; return e }(),
	} {
		if err := eventstest.Validate(bad); err == nil {
			t.Errorf("%s: the schema accepted it", name)
		}
	}
	for _, typ := range events.Types {
		if _, err := eventstest.Schema(typ); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func withData(e events.Event, data string) events.Event {
	e.Data = json.RawMessage(data)
	return e
}

// TestRecorderWritesInTheTransaction: Record's rows are the events given,
// and a rolled-back transaction leaves none.
func TestRecorderWritesInTheTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := tracedContext(t)
		var evs []events.Event
		for i := range 1200 { // more than one statement's worth
			e, err := events.New(ctx, events.MemberCreated, events.SourceLoyalty, "m", at.Add(time.Duration(i)*time.Microsecond),
				events.MemberCreatedData{MemberID: "m", Tier: "blue"})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if err := (events.Recorder{}).Record(ctx, tx, evs...); err != nil {
				return err
			}
			return context.Canceled // roll back
		})
		if err != context.Canceled {
			t.Fatalf("InTx: %v", err)
		}
		if got := eventstest.All(t, d); len(got) != 0 {
			t.Fatalf("%d events after a rollback", len(got))
		}
		if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			return (events.Recorder{}).Record(ctx, tx, evs...)
		}); err != nil {
			t.Fatal(err)
		}
		got := eventstest.All(t, d)
		if len(got) != len(evs) {
			t.Fatalf("%d events read back, want %d", len(got), len(evs))
		}
		for i, e := range got {
			w := evs[i]
			if e.ID != w.ID || !e.Time.Equal(w.Time) || string(e.Data) != string(w.Data) || e.TraceParent != w.TraceParent || e.Source != w.Source {
				t.Fatalf("event %d read back as %+v, want %+v", i, e, w)
			}
		}
		one, err := events.Get(ctx, d.Read(), evs[7].ID)
		if err != nil || one.ID != evs[7].ID {
			t.Errorf("Get: %+v, %v", one, err)
		}
		if _, err := events.Get(ctx, d.Read(), "evt_missing"); err != events.ErrNotFound {
			t.Errorf("Get of a missing id: %v", err)
		}
		ranged, err := events.List(ctx, d.Read(), events.Filter{From: evs[10].Time, To: evs[20].Time})
		if err != nil || len(ranged) != 10 || ranged[0].ID != evs[10].ID {
			t.Errorf("List of a range: %d events, %v", len(ranged), err)
		}
	})
}
