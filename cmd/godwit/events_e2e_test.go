package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
	"github.com/godwit-dev/godwit/internal/platform/telemetry/otlptest"
)

// natsAddr is the NATS server (with JetStream) the NATS tests use.
const natsAddr = "127.0.0.1:4222"

// natsAnswers reports whether a NATS server answers on natsAddr.
func natsAnswers() bool {
	c, err := net.DialTimeout("tcp", natsAddr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// webhookSink is a webhook endpoint that counts deliveries by event id and,
// as a consumer would, continues each delivery's trace with a span of its
// own ("consume <type>"), exported by its own telemetry.
type webhookSink struct {
	*httptest.Server
	tel *telemetry.Telemetry

	mu     sync.Mutex
	got    map[string]int          // deliveries by webhook-id
	events map[string]events.Event // the delivered events by id
	change chan struct{}
}

func newWebhookSink(t *testing.T, recv *otlptest.Receiver) *webhookSink {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "webhook-consumer",
		Getenv: recv.Env(map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "100"})}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := &webhookSink{tel: tel, got: map[string]int{}, events: map[string]events.Event{}, change: make(chan struct{}, 1)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		_, span := tel.TracerProvider.Tracer("webhook-consumer").Start(ctx, "consume "+e.Type)
		span.End()
		s.mu.Lock()
		s.got[r.Header.Get("webhook-id")]++
		s.events[e.ID] = e
		s.mu.Unlock()
		select {
		case s.change <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() {
		s.Close()
		_ = tel.Shutdown(context.Background())
	})
	return s
}

// waitFor waits until cond holds of the delivered events (by type).
func (s *webhookSink) waitFor(t *testing.T, what string, cond func(byType map[string][]events.Event) bool) map[string][]events.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		byType := map[string][]events.Event{}
		for _, e := range s.events {
			byType[e.Type] = append(byType[e.Type], e)
		}
		s.mu.Unlock()
		if cond(byType) {
			return byType
		}
		select {
		case <-s.change:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waiting for %s: delivered %v", what, byType)
		}
	}
}

// mintToken runs `godwit token --data-dir dataDir args…` (args: any --db,
// the scope and the subject) with env added to the environment.
func mintToken(t *testing.T, dataDir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"token", "--data-dir", dataDir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("godwit token %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestEventsTraceAcrossWebhookAndNATS runs `godwit serve` (both engines)
// exporting to an in-test OTLP receiver, with a webhook subscription and,
// when a NATS server answers on 127.0.0.1:4222, --nats. One request enrols
// a member and one earns points; their events are delivered by webhook to an
// endpoint that continues each delivery's trace with a span of its own, and
// printed by `godwit events tail` (exporting to the same receiver), whose
// events.consume span continues the trace from the message headers. Then a
// second publish of one event with the same Nats-Msg-Id is dropped by
// JetStream, and tail does not print it again. The receiver must hold, in
// the earning request's own trace: its server span, webhook.deliver (a
// child of the request's span tree), the webhook consumer's span (a child of
// webhook.deliver), and — with NATS — nats.publish and events.consume (a
// child of nats.publish).
func TestEventsTraceAcrossWebhookAndNATS(t *testing.T) {
	withNATS := natsAnswers()
	if !withNATS {
		t.Logf("no NATS server answers on %s: checking the webhook path only (start nats-server -js to check NATS and `godwit events tail` too)", natsAddr)
	}
	for _, engine := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			var env []string
			if engine == db.Postgres {
				env = append(env, "GODWIT_DB="+dbtest.DSN(t, db.Postgres))
			}
			recv := otlptest.NewReceiver(t)
			sink := newWebhookSink(t, recv)
			otel := []string{
				"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Endpoint(),
				"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
				"OTEL_BSP_SCHEDULE_DELAY=100",
			}
			dataDir := t.TempDir()
			args := []string{"--data-dir", dataDir, "--webhook-allow-private", "--webhook-interval", "100ms"}
			if withNATS {
				args = append(args, "--nats", "nats://"+natsAddr)
			}
			s := startServer(t, append(env, otel...), args...)
			admin := s.token
			if admin == "" {
				admin = mintToken(t, dataDir, env, "admin", "ops")
			}
			service := mintToken(t, dataDir, env, "service", "airline")

			code, sub := s.post(t, "/v1/admin/webhook-subscriptions", admin, map[string]any{
				"url": sink.URL, "event_types": []string{events.MemberCreated, events.PointsEarned}}, nil)
			if code != http.StatusCreated {
				t.Fatalf("subscribe: %d %v", code, sub)
			}

			// tail first, from now, so it sees the events as they are published.
			// Base 36: nineteen decimal digits can pass the Luhn check and be
			// refused as a card number (card_data_rejected).
			member := "tail-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			var tail *exec.Cmd
			lines := make(chan string, 1000)
			if withNATS {
				tail = exec.Command(binary, "events", "tail", "--nats", "nats://"+natsAddr,
					"--type", events.MemberCreated+","+events.PointsEarned, "--since", time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano))
				tail.Env = append(os.Environ(), append(otel, "OTEL_SERVICE_NAME=godwit-tail")...)
				out, err := tail.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				var stderr strings.Builder
				tail.Stderr = &stderr
				if err := tail.Start(); err != nil {
					t.Fatal(err)
				}
				go func() {
					sc := bufio.NewScanner(out)
					sc.Buffer(make([]byte, 1<<20), 1<<20)
					for sc.Scan() {
						lines <- sc.Text()
					}
				}()
				t.Cleanup(func() {
					if tail.ProcessState == nil {
						_ = tail.Process.Kill()
						_ = tail.Wait()
					}
					if t.Failed() {
						t.Logf("godwit events tail stderr:\n%s", stderr.String())
					}
				})
			}

			// The causing requests.
			if code, body := s.post(t, "/v1/members", service, map[string]any{"id": member, "name": "Tess", "email": member + "@example.test"}, nil); code != http.StatusCreated {
				t.Fatalf("enrol: %d %v", code, body)
			}
			code, earned := s.post(t, "/v1/members/"+member+"/activities", service, map[string]any{
				"type": "flight", "external_id": "PNR-" + member, "occurred_at": time.Now().UTC().Format(time.RFC3339),
				"flight": map[string]any{"distance_miles": 2000, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "LAX"}}, nil)
			if code != http.StatusCreated {
				t.Fatalf("earn: %d %v", code, earned)
			}

			// Delivered by webhook, once each.
			byType := sink.waitFor(t, "member.created and points.earned", func(m map[string][]events.Event) bool {
				return len(m[events.MemberCreated]) == 1 && len(m[events.PointsEarned]) == 1
			})
			earn := byType[events.PointsEarned][0]
			if earn.Subject != member || earn.TraceParent == "" {
				t.Fatalf("points.earned %+v: want subject %s and a traceparent", earn, member)
			}
			traceID := strings.Split(earn.TraceParent, "-")[1]
			ours := map[string]bool{byType[events.MemberCreated][0].ID: true, earn.ID: true}

			if withNATS {
				// tail prints both events, once each.
				seen := map[string]int{}
				deadline := time.After(30 * time.Second)
				for len(seen) < len(ours) {
					select {
					case l := <-lines:
						var e events.Event
						if err := json.Unmarshal([]byte(l), &e); err != nil {
							t.Fatalf("tail printed %q: %v", l, err)
						}
						if ours[e.ID] {
							seen[e.ID]++
						}
					case <-deadline:
						t.Fatalf("godwit events tail printed %d of our %d events", len(seen), len(ours))
					}
				}
				// A second publish of the earning with its id as Nats-Msg-Id:
				// JetStream drops it, and tail prints nothing more of ours.
				nc, err := nats.Connect("nats://" + natsAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				js, err := nc.JetStream()
				if err != nil {
					t.Fatal(err)
				}
				body, _ := json.Marshal(earn)
				ack, err := js.Publish("godwit."+events.PointsEarned, body, nats.MsgId(earn.ID))
				if err != nil || !ack.Duplicate || ack.Stream != "GODWIT_EVENTS" {
					t.Errorf("republishing %s: ack %+v, %v; want a duplicate dropped by GODWIT_EVENTS", earn.ID, ack, err)
				}
				quiet := time.After(2 * time.Second)
			drain:
				for {
					select {
					case l := <-lines:
						var e events.Event
						_ = json.Unmarshal([]byte(l), &e)
						if ours[e.ID] {
							seen[e.ID]++
						}
					case <-quiet:
						break drain
					}
				}
				for id := range ours {
					if seen[id] != 1 {
						t.Errorf("tail printed event %s %d times, want once", id, seen[id])
					}
				}
				// SIGINT: tail stops and flushes its spans.
				_ = tail.Process.Signal(syscall.SIGINT)
				waited := make(chan error, 1)
				go func() { waited <- tail.Wait() }()
				select {
				case <-waited:
				case <-time.After(15 * time.Second):
					t.Fatal("godwit events tail ignored SIGINT")
				}
			}

			// The trace, as the OTLP receiver got it.
			want := []string{"POST /v1/members/{id}/activities", "webhook.deliver", "consume " + events.PointsEarned}
			if withNATS {
				want = append(want, "nats.publish", "events.consume")
			}
			inTrace := func(spans []otlptest.Span) map[string][]otlptest.Span {
				out := map[string][]otlptest.Span{}
				for _, sp := range spans {
					if sp.TraceID == traceID {
						out[sp.Name] = append(out[sp.Name], sp)
					}
				}
				return out
			}
			spans := recv.WaitForSpans(t, func(spans []otlptest.Span) bool {
				got := inTrace(spans)
				for _, n := range want {
					if len(got[n]) == 0 {
						return false
					}
				}
				return true
			}, 30*time.Second)
			got := inTrace(spans)
			byID := map[string]otlptest.Span{}
			for _, sp := range spans {
				byID[sp.SpanID] = sp
			}
			if sp := got[want[0]][0]; sp.Kind != "server" || sp.Resource["service.name"] != "godwit" {
				t.Errorf("the earning's span: kind %s, service %v", sp.Kind, sp.Resource["service.name"])
			}
			parentName := func(sp otlptest.Span) string { return byID[sp.ParentSpanID].Name }
			for _, sp := range got["consume "+events.PointsEarned] {
				if parentName(sp) != "webhook.deliver" || sp.Resource["service.name"] != "webhook-consumer" {
					t.Errorf("webhook consumer span's parent %q (service %v), want webhook.deliver", parentName(sp), sp.Resource["service.name"])
				}
			}
			if withNATS {
				for _, sp := range got["events.consume"] {
					if parentName(sp) != "nats.publish" || sp.Resource["service.name"] != "godwit-tail" {
						t.Errorf("events.consume's parent %q (service %v), want nats.publish in godwit-tail", parentName(sp), sp.Resource["service.name"])
					}
				}
			}
			// The subscription's delivery log says delivered, once.
			sink.mu.Lock()
			for id := range ours {
				if sink.got[id] != 1 {
					t.Errorf("event %s delivered %d times by webhook, want once", id, sink.got[id])
				}
			}
			sink.mu.Unlock()
			if err, _ := s.stop(t); err != nil {
				t.Fatalf("exit: %v\n%s", err, s.stderr)
			}
		})
	}
}
