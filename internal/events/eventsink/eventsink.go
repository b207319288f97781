// Package eventsink is a consumer for load runs: a webhook endpoint and a
// NATS stream reader that count the events they receive by id, and a check
// that every event written was received, none twice. The load test in
// cmd/godwit and scripts/eventsink (the by-hand 60 s run) both use it.
package eventsink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/natsbus"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Sink counts the events it receives, by id, per channel.
type Sink struct {
	mu      sync.Mutex
	wh      *standardwebhooks.Webhook
	webhook map[string]int
	nats    map[string]int
	refused int // webhook deliveries whose signature did not verify
}

// New returns an empty sink.
func New() *Sink { return &Sink{webhook: map[string]int{}, nats: map[string]int{}} }

// SetSecret makes the webhook endpoint verify signatures with the
// subscription's secret (whsec_…); a delivery that fails is answered 400 and
// counted as refused.
func (s *Sink) SetSecret(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.wh = wh
	s.mu.Unlock()
	return nil
}

// ServeHTTP is the webhook endpoint: it counts the delivery's webhook-id.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wh != nil {
		if err := s.wh.Verify(body, r.Header); err != nil {
			s.refused++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	s.webhook[r.Header.Get("webhook-id")]++
	w.WriteHeader(http.StatusNoContent)
}

// TailNATS counts the events on the NATS stream from since until ctx ends.
func (s *Sink) TailNATS(ctx context.Context, url string, since time.Time) error {
	bus, err := natsbus.Connect(ctx, natsbus.Config{URL: url})
	if err != nil {
		return err
	}
	defer bus.Close()
	return bus.Tail(ctx, lineCounter{s}, natsbus.TailOptions{Since: since})
}

// lineCounter counts the event of each line Tail prints (one whole line per
// Write).
type lineCounter struct{ s *Sink }

func (l lineCounter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		var e events.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return 0, fmt.Errorf("eventsink: a message that is no event: %w", err)
		}
		l.s.mu.Lock()
		l.s.nats[e.ID]++
		l.s.mu.Unlock()
	}
	return len(p), nil
}

// Report compares what the sink received with the events that should have
// arrived.
type Report struct {
	Events int // events expected
	// Per channel: expected events not received, and events received more
	// than once (expected or not).
	WebhookMissing, WebhookTwice int
	NATSMissing, NATSTwice       int
	Refused                      int // webhook deliveries with a bad signature
	Example                      string
}

// OK says every expected event arrived once on each channel checked.
func (r Report) OK() bool {
	return r.WebhookMissing == 0 && r.WebhookTwice == 0 && r.NATSMissing == 0 && r.NATSTwice == 0 && r.Refused == 0
}

func (r Report) String() string {
	return fmt.Sprintf("%d events; webhook: %d missing, %d twice, %d refused; NATS: %d missing, %d twice%s",
		r.Events, r.WebhookMissing, r.WebhookTwice, r.Refused, r.NATSMissing, r.NATSTwice, r.Example)
}

// Check compares the sink with the expected ids; withNATS checks the NATS
// channel too.
func (s *Sink) Check(ids []string, withNATS bool) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{Events: len(ids), Refused: s.refused}
	note := func(format string, args ...any) {
		if r.Example == "" {
			r.Example = "; e.g. " + fmt.Sprintf(format, args...)
		}
	}
	for _, id := range ids {
		if s.webhook[id] == 0 {
			r.WebhookMissing++
			note("%s not delivered by webhook", id)
		}
		if withNATS && s.nats[id] == 0 {
			r.NATSMissing++
			note("%s not on the NATS stream", id)
		}
	}
	for id, n := range s.webhook {
		if n > 1 {
			r.WebhookTwice++
			note("%s delivered by webhook %d times", id, n)
		}
	}
	if withNATS {
		for id, n := range s.nats {
			if n > 1 {
				r.NATSTwice++
				note("%s on the NATS stream %d times", id, n)
			}
		}
	}
	return r
}

// Wait checks every second until Check is OK or ctx ends, and returns the
// last report.
func (s *Sink) Wait(ctx context.Context, ids []string, withNATS bool) Report {
	for {
		r := s.Check(ids, withNATS)
		if r.OK() {
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(time.Second):
		}
	}
}

// EventIDs returns the ids of the events in the events table with time at
// or after since: the events a subscription made at since must receive.
func EventIDs(ctx context.Context, d *db.DB, since time.Time) ([]string, error) {
	rows, err := d.Read().QueryContext(ctx, `SELECT id FROM events WHERE time >= $1`, db.Micros(since))
	if err != nil {
		return nil, fmt.Errorf("eventsink: events: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
