// Command otlpsink is a minimal OTLP/HTTP receiver for benchmarks: it accepts
// traces, metrics and logs, counts what it received and discards it, so a
// benchmark measures the cost of exporting spans over the network without a
// collector's own CPU competing on a small machine. It prints its counts on exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4318", "listen address (loopback)")
	flag.Parse()
	var requests, bytes atomic.Int64
	mux := http.NewServeMux()
	for _, p := range []string{"/v1/traces", "/v1/metrics", "/v1/logs"} {
		mux.HandleFunc("POST "+p, func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			requests.Add(1)
			bytes.Add(n)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK) // an empty Export*ServiceResponse is zero bytes
		})
	}
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	fmt.Printf("otlpsink: %d export requests, %d bytes\n", requests.Load(), bytes.Load())
}
