package app

import (
	"context"
	"io"
	"time"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/natsbus"
)

// TailConfig configures TailEvents.
type TailConfig struct {
	NATS    string   // nats://host:port
	Types   []string // none: every type
	Max     int      // stop after this many (0: until ctx ends)
	Since   time.Time
	Observe TelemetryConfig
}

// TailEvents prints the events arriving on the NATS stream, one CloudEvents
// JSON line each, consuming each under an events.consume span that
// continues the trace of the request that caused it.
func TailEvents(ctx context.Context, cfg TailConfig, w io.Writer) error {
	for _, t := range cfg.Types {
		if !events.IsType(t) {
			return errUnknownEventType(t)
		}
	}
	tel, flush, err := cfg.Observe.setup(ctx)
	if err != nil {
		return err
	}
	defer flush()
	bus, err := natsbus.Connect(ctx, natsbus.Config{URL: cfg.NATS, TracerProvider: tel.TracerProvider})
	if err != nil {
		return err
	}
	defer bus.Close()
	return bus.Tail(ctx, w, natsbus.TailOptions{Types: cfg.Types, Max: cfg.Max, Since: cfg.Since})
}

type errUnknownEventType string

func (e errUnknownEventType) Error() string {
	return "unknown event type " + string(e) + " (docs/events.md lists them)"
}
