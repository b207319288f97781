package inventory

import (
	"context"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/faults"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// FaultPointReserve is the fault point that delays every reservation.
const FaultPointReserve = "inventory.reserve"

// Faults are the inventory's injectable faults, as GET and PUT
// /v1/admin/faults/inventory show them (the fault point inventory.reserve).
type Faults struct {
	// ReserveDelayMS delays every reservation by this many milliseconds.
	ReserveDelayMS int64 `json:"reserve_delay_ms"`
}

// maxReserveDelay bounds the injected delay so a typo cannot hang checkouts for hours.
const maxReserveDelay = 60_000

// newFaults registers the inventory's fault point with store (a store of
// its own when nil).
func newFaults(cfg Config) *faults.Store {
	store := cfg.Faults
	if store == nil {
		store = faults.NewStore(faults.Config{DB: cfg.DB, Now: cfg.Now})
	}
	store.Register(faults.Point{Name: FaultPointReserve, Summary: "Delays every stock reservation", Delay: true, MaxDelayMS: maxReserveDelay})
	return store
}

// Faults returns the current fault settings.
func (s *Service) Faults(ctx context.Context) (Faults, error) {
	f, err := s.faults.Read(ctx, FaultPointReserve)
	if err != nil {
		return Faults{}, fmt.Errorf("inventory: read faults: %w", err)
	}
	return Faults{ReserveDelayMS: f.DelayMS}, nil
}

// SetFaults stores new fault settings; every replica sees them within a second.
func (s *Service) SetFaults(ctx context.Context, f Faults) (Faults, error) {
	if f.ReserveDelayMS < 0 || f.ReserveDelayMS > maxReserveDelay {
		return Faults{}, errs.Coded(errs.Invalid, "invalid_field", "reserve_delay_ms must be between 0 and %d", maxReserveDelay).With("field", "reserve_delay_ms")
	}
	if _, err := s.faults.Set(ctx, FaultPointReserve, faults.Settings{DelayMS: f.ReserveDelayMS}); err != nil {
		return Faults{}, fmt.Errorf("inventory: set faults: %w", err)
	}
	return f, nil
}

// injectDelay sleeps for the configured reservation delay, if any, recording it
// on the span so a trace shows the slowness was injected.
func (s *Service) injectDelay(ctx context.Context, span trace.Span) error {
	f, err := s.faults.Get(ctx, FaultPointReserve)
	if err != nil {
		return fmt.Errorf("inventory: read faults: %w", err)
	}
	if err := faults.Sleep(trace.ContextWithSpan(ctx, span), FaultPointReserve, f.Delay()); err != nil {
		return errs.Coded(errs.Timeout, "reservation_timeout", "the reservation was cancelled while delayed").Wrap(err)
	}
	return nil
}

func (s *Service) faultRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/admin/faults/inventory", Summary: "The inventory's injected reservation delay", Access: authAdmin, Handler: func(w http.ResponseWriter, r *http.Request) error {
			f, err := s.Faults(r.Context())
			if err != nil {
				return err
			}
			httpx.WriteJSON(w, http.StatusOK, f)
			return nil
		}},
		{Method: "PUT", Pattern: "/v1/admin/faults/inventory", Summary: "Set the inventory's injected reservation delay", Access: authAdmin, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var f Faults
			if err := httpx.Decode(r, &f); err != nil {
				return err
			}
			out, err := s.SetFaults(r.Context(), f)
			if err != nil {
				return err
			}
			httpx.WriteJSON(w, http.StatusOK, out)
			return nil
		}},
	}
}
