package order

import (
	"context"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// The order service's fault points: delays around the creation of a
// checkout's order, so that a test or a drill can hold a checkout right
// between its charge and its order, or right after its order, and see what a
// crash there does (the saga must resume or settle it, never charge twice).
const (
	// FaultPointCreate delays every order creation before the order is
	// written: the charge is made, the order not yet.
	FaultPointCreate = "order.create"
	// FaultPointCreated delays every order creation after the order is
	// durable, before the checkout goes on (and answers).
	FaultPointCreated = "order.created"
)

// maxFaultDelay bounds an admin's delay at an order fault point.
const maxFaultDelay = 60_000

// newFaults registers the order service's fault points with cfg.Faults (a
// store of its own when nil).
func newFaults(cfg Config) *faults.Store {
	store := cfg.Faults
	if store == nil {
		store = faults.NewStore(faults.Config{DB: cfg.DB, Now: cfg.Now})
	}
	store.Register(
		faults.Point{Name: FaultPointCreate, Summary: "Delays every order creation before the order is written (a checkout holds between its charge and its order)",
			Delay: true, MaxDelayMS: maxFaultDelay},
		faults.Point{Name: FaultPointCreated, Summary: "Delays every order creation after the order is written (a checkout holds right after its order)",
			Delay: true, MaxDelayMS: maxFaultDelay},
	)
	return store
}

// WaitFault waits out the delay set at point (FaultPointCreate or
// FaultPointCreated), recording it on ctx's span. In one process the checkout
// saga calls it around its order step, outside its transactions, so a delay
// never holds a write transaction; over HTTP the order service's create
// endpoint applies both itself. It fails only if ctx ends while it waits.
func (s *Service) WaitFault(ctx context.Context, point string) error {
	f, err := s.faults.Get(ctx, point)
	if err != nil {
		// A fault setting that cannot be read injects nothing.
		s.log.WarnContext(ctx, "order: read fault setting", "point", point, "error", err.Error())
		return nil
	}
	if err := faults.Sleep(ctx, point, f.Delay()); err != nil {
		return errs.Coded(errs.Timeout, "order_fault_wait_cancelled", "the request ended during an injected order delay").Wrap(err)
	}
	return nil
}
