// Command eventsink checks event delivery under load (issue 20): it
// subscribes a webhook endpoint of its own to every event type on a running
// `godwit serve`, verifies and counts the deliveries by webhook-id, and with
// --nats counts the events on the JetStream stream too. On SIGINT or SIGTERM
// (send it when the load run is over) it reads the ids of the events
// written since it subscribed from the database, waits up to --wait for them
// all, and prints the report: every event delivered by webhook (and on
// NATS), none twice. Exit status 1 when that does not hold.
//
//	go run ./scripts/eventsink --target http://127.0.0.1:18800 --token "$ADMIN" \
//	    --db "$DSN" --nats nats://127.0.0.1:4222 &
//	godwit loadgen --target http://127.0.0.1:18800 --duration 60s ...
//	kill -INT %1; wait %1
//
// The server must run with --webhook-allow-private (the endpoint is on
// loopback).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventsink"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

func main() {
	target := flag.String("target", "http://127.0.0.1:8080", "the Godwit server")
	token := flag.String("token", "", "an admin token (godwit token admin ops)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address of the webhook endpoint")
	dsn := flag.String("db", "", "the server's database (SQLite path or postgres:// URL), to read the event ids")
	natsURL := flag.String("nats", "", "also count the events on this NATS server's GODWIT_EVENTS stream")
	wait := flag.Duration("wait", 2*time.Minute, "after the signal, how long to wait for the last deliveries")
	flag.Parse()
	if *token == "" || *dsn == "" {
		log.Fatal("eventsink: --token and --db are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sink := eventsink.New()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	since, err := subscribe(*target, *token, "http://"+ln.Addr().String(), sink)
	if err != nil {
		log.Fatal(err)
	}
	tailCtx, stopTail := context.WithCancel(context.Background())
	defer stopTail()
	if *natsURL != "" {
		go func() {
			if err := sink.TailNATS(tailCtx, *natsURL, since.Add(-time.Second)); err != nil && tailCtx.Err() == nil {
				log.Printf("eventsink: NATS: %v", err)
			}
		}()
	}
	fmt.Fprintf(os.Stderr, "eventsink: subscribed %s at %s; send SIGINT when the load is over\n", ln.Addr(), since.Format(time.RFC3339Nano))
	<-ctx.Done()
	stop()

	d, err := db.Open(context.Background(), *dsn, db.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	ids, err := eventsink.EventIDs(context.Background(), d, since)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	rep := sink.Wait(wctx, ids, *natsURL != "")
	fmt.Printf("eventsink: %v (all in after %s)\n", rep, time.Since(start).Round(time.Millisecond))
	if !rep.OK() {
		os.Exit(1)
	}
}

// subscribe subscribes url to every event type and gives the sink the
// secret; it returns the time after which every event must arrive.
func subscribe(target, token, url string, sink *eventsink.Sink) (time.Time, error) {
	body, _ := json.Marshal(map[string]any{"url": url, "event_types": events.Types, "description": "eventsink"})
	req, err := http.NewRequest(http.MethodPost, target+"/v1/admin/webhook-subscriptions", bytes.NewReader(body))
	if err != nil {
		return time.Time{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("eventsink: subscribe: %w", err)
	}
	defer res.Body.Close()
	var sub struct {
		Secret string `json:"secret"`
	}
	if err := json.NewDecoder(res.Body).Decode(&sub); err != nil || res.StatusCode != http.StatusCreated {
		return time.Time{}, fmt.Errorf("eventsink: subscribe: %s (%v)", res.Status, err)
	}
	return time.Now(), sink.SetSecret(sub.Secret)
}
