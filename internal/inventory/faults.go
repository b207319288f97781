package inventory

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Faults are the inventory's injectable faults.
type Faults struct {
	// ReserveDelayMS delays every reservation by this many milliseconds.
	ReserveDelayMS int64 `json:"reserve_delay_ms"`
}

// maxReserveDelay bounds the injected delay so a typo cannot hang checkouts for hours.
const maxReserveDelay = 60_000

// faultCache keeps the fault settings for a second: they are read on every
// reservation, and a fault switch taking effect within a second is fine.
type faultCache struct {
	mu      sync.Mutex
	value   Faults
	fetched time.Time
}

// Faults returns the current fault settings.
func (s *Service) Faults(ctx context.Context) (Faults, error) {
	var f Faults
	err := s.db.Read().QueryRowContext(ctx, `SELECT reserve_delay_ms FROM inventory_faults WHERE id = 1`).Scan(&f.ReserveDelayMS)
	if err != nil {
		return Faults{}, fmt.Errorf("inventory: read faults: %w", err)
	}
	return f, nil
}

// SetFaults stores new fault settings; every replica sees them within a second.
func (s *Service) SetFaults(ctx context.Context, f Faults) (Faults, error) {
	if f.ReserveDelayMS < 0 || f.ReserveDelayMS > maxReserveDelay {
		return Faults{}, errs.Coded(errs.Invalid, "invalid_field", "reserve_delay_ms must be between 0 and %d", maxReserveDelay).With("field", "reserve_delay_ms")
	}
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE inventory_faults SET reserve_delay_ms = $1, updated_at = $2 WHERE id = 1`, f.ReserveDelayMS, db.Micros(s.now()))
		return err
	})
	if err != nil {
		return Faults{}, fmt.Errorf("inventory: set faults: %w", err)
	}
	s.faults.mu.Lock()
	s.faults.fetched = time.Time{}
	s.faults.mu.Unlock()
	return f, nil
}

// injectDelay sleeps for the configured reservation delay, if any, recording it
// on the span so a trace shows the slowness was injected.
func (s *Service) injectDelay(ctx context.Context, span trace.Span) error {
	s.faults.mu.Lock()
	f, fresh := s.faults.value, time.Since(s.faults.fetched) < time.Second
	s.faults.mu.Unlock()
	if !fresh {
		var err error
		if f, err = s.Faults(ctx); err != nil {
			return err
		}
		s.faults.mu.Lock()
		s.faults.value, s.faults.fetched = f, time.Now()
		s.faults.mu.Unlock()
	}
	if f.ReserveDelayMS <= 0 {
		return nil
	}
	d := time.Duration(f.ReserveDelayMS) * time.Millisecond
	span.AddEvent("fault_injected", trace.WithAttributes(attribute.Int64("fault.delay_ms", f.ReserveDelayMS)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errs.Coded(errs.Timeout, "reservation_timeout", "the reservation was cancelled while delayed").Wrap(ctx.Err())
	case <-t.C:
		return nil
	}
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
