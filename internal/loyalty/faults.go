package loyalty

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// ErrRejected is returned by the built-in simulators when their fault
// setting says to fail.
var ErrRejected = errors.New("rejected by fault setting")

// Fault targets, as the loyalty fault routes name them.
const faultFulfillment = "fulfillment"

func faultPartner(id string) string { return "partner:" + id }

// FaultPointFulfillment is the fault point of the built-in fulfilment
// provider; each partner simulator's is FaultPointPartner(id).
const FaultPointFulfillment = "loyalty.fulfillment"

// FaultPointPartner is the fault point of a partner's simulator.
func FaultPointPartner(id string) string { return "loyalty.partner." + id }

// Fault is a fault setting of a simulated dependency.
type Fault struct {
	Fail    bool
	DelayMS int64
	// Source is "program" (the program file's setting, no admin override)
	// or "admin" (set at run time through the API, for every replica).
	Source    string
	UpdatedBy string
	UpdatedAt time.Time
}

// maxFaultDelay bounds an admin's delay: longer would only hold requests
// (and, past the hold TTL, race the hold reaper).
const maxFaultDelay = 60_000

// newFaults registers the fulfilment provider's and every partner
// simulator's fault point with store (a store of its own when nil), the
// program file's settings as their defaults.
func newFaults(cfg Config) *faults.Store {
	store := cfg.Faults
	if store == nil {
		store = faults.NewStore(faults.Config{DB: cfg.DB, Now: cfg.Now})
	}
	point := func(name, summary string, def program.FaultSettings) faults.Point {
		return faults.Point{Name: name, Summary: summary, Fail: true, Delay: true, MaxDelayMS: maxFaultDelay,
			Default: faults.Settings{Fail: def.Fail, DelayMS: def.Delay.Milliseconds()}, DefaultSource: "program"}
	}
	store.Register(point(FaultPointFulfillment, "Makes the built-in redemption fulfilment provider fail or slow down", cfg.Program.Fulfillment))
	for _, pt := range cfg.Program.Partners {
		store.Register(point(FaultPointPartner(pt.ID), "Makes the "+pt.ID+" partner simulator reject or slow down", pt.Simulate))
	}
	return store
}

func faultOf(f faults.Setting) Fault {
	return Fault{Fail: f.Fail, DelayMS: f.DelayMS, Source: f.Source, UpdatedBy: f.UpdatedBy, UpdatedAt: f.UpdatedAt}
}

// FulfillmentFault returns the effective fault setting of the built-in
// fulfilment provider.
func (s *Service) FulfillmentFault(ctx context.Context) (Fault, error) {
	f, err := s.faults.Read(ctx, FaultPointFulfillment)
	return faultOf(f), internal("read fault", err)
}

// PartnerFault returns the effective fault setting of a partner's simulator.
func (s *Service) PartnerFault(ctx context.Context, partnerID string) (Fault, error) {
	pt, ok := s.prog.Partner(partnerID)
	if !ok {
		return Fault{}, unknownPartner(partnerID)
	}
	f, err := s.faults.Read(ctx, FaultPointPartner(pt.ID))
	return faultOf(f), internal("read fault", err)
}

// SetFulfillmentFault stores an admin fault setting for the built-in
// fulfilment provider.
func (s *Service) SetFulfillmentFault(ctx context.Context, fail bool, delayMS int64) (Fault, error) {
	return s.setFault(ctx, FaultPointFulfillment, fail, delayMS)
}

// SetPartnerFault stores an admin fault setting for a partner's simulator.
func (s *Service) SetPartnerFault(ctx context.Context, partnerID string, fail bool, delayMS int64) (Fault, error) {
	if _, ok := s.prog.Partner(partnerID); !ok {
		return Fault{}, unknownPartner(partnerID)
	}
	return s.setFault(ctx, FaultPointPartner(partnerID), fail, delayMS)
}

func (s *Service) setFault(ctx context.Context, point string, fail bool, delayMS int64) (Fault, error) {
	if delayMS < 0 || delayMS > maxFaultDelay {
		return Fault{}, errs.Coded(errs.Unprocessable, "invalid_delay", "delay_ms must be between 0 and %d", maxFaultDelay).With("field", "delay_ms")
	}
	f, err := s.faults.Set(ctx, point, faults.Settings{Fail: fail, DelayMS: delayMS})
	if err != nil {
		return Fault{}, internal("set fault", err)
	}
	return faultOf(f), nil
}

func unknownPartner(id string) error {
	return errs.Coded(errs.NotFound, "unknown_partner", "no transfer partner with id %q", id).With("partner_id", id)
}

// injectFault applies a simulator's fault point: it waits the delay (a
// fault_injected event on ctx's span), then fails if the setting says so.
func (s *Service) injectFault(ctx context.Context, point string) error {
	f, err := s.faults.Get(ctx, point)
	if err != nil {
		return fmt.Errorf("fault setting %s: %w", point, err)
	}
	if err := faults.Sleep(ctx, point, f.Delay()); err != nil {
		return err
	}
	if f.Fail {
		return ErrRejected
	}
	return nil
}

// confirmationCode is a short random code a member can quote: a prefix and
// eight characters from an alphabet without look-alikes.
func confirmationCode(prefix string) string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	var sb strings.Builder
	sb.WriteString(prefix)
	for _, c := range b {
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}

// builtinFulfiller is the built-in provider: it issues confirmation codes,
// and fails or is slow as the effective fault setting says.
type builtinFulfiller struct{ s *Service }

func (f builtinFulfiller) Fulfill(ctx context.Context, r FulfillmentRequest) (string, error) {
	if err := f.s.injectFault(ctx, FaultPointFulfillment); err != nil {
		return "", fmt.Errorf("fulfilment of %s: %w", r.Option.ID, err)
	}
	prefix := "RD-"
	switch r.Option.Type {
	case program.OptionAwardFlight:
		prefix = "AW-"
	case program.OptionUpgrade:
		prefix = "UP-"
	case program.OptionMerchandise:
		prefix = "MD-"
	}
	return confirmationCode(prefix), nil
}

// builtinPartners simulates every partner of the program file.
type builtinPartners struct{ s *Service }

func (p builtinPartners) Transfer(ctx context.Context, r PartnerTransferRequest) (string, error) {
	if err := p.s.injectFault(ctx, FaultPointPartner(r.Partner.ID)); err != nil {
		return "", fmt.Errorf("transfer to %s: %w", r.Partner.ID, err)
	}
	return confirmationCode("TR-"), nil
}
