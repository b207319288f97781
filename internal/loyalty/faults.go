package loyalty

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// ErrRejected is returned by the built-in simulators when their fault
// setting says to fail.
var ErrRejected = errors.New("rejected by fault setting")

// Fault targets.
const faultFulfillment = "fulfillment"

func faultPartner(id string) string { return "partner:" + id }

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

func fromSettings(f program.FaultSettings) Fault {
	return Fault{Fail: f.Fail, DelayMS: f.Delay.Milliseconds(), Source: "program"}
}

// fault returns the effective setting of target: the admin's row if there
// is one, else the program file's.
func (s *Service) fault(ctx context.Context, target string, def program.FaultSettings) (Fault, error) {
	var (
		fail, delay int64
		actor       string
		updated     int64
	)
	err := s.db.Read().QueryRowContext(ctx, `SELECT fail, delay_ms, actor, updated_at FROM loyalty_faults WHERE target = $1`, target).
		Scan(&fail, &delay, &actor, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return fromSettings(def), nil
	}
	if err != nil {
		return Fault{}, err
	}
	return Fault{Fail: fail == 1, DelayMS: delay, Source: "admin", UpdatedBy: actor, UpdatedAt: db.FromMicros(updated)}, nil
}

// FulfillmentFault returns the effective fault setting of the built-in
// fulfilment provider.
func (s *Service) FulfillmentFault(ctx context.Context) (Fault, error) {
	f, err := s.fault(ctx, faultFulfillment, s.prog.Fulfillment)
	return f, internal("read fault", err)
}

// PartnerFault returns the effective fault setting of a partner's simulator.
func (s *Service) PartnerFault(ctx context.Context, partnerID string) (Fault, error) {
	pt, ok := s.prog.Partner(partnerID)
	if !ok {
		return Fault{}, unknownPartner(partnerID)
	}
	f, err := s.fault(ctx, faultPartner(pt.ID), pt.Simulate)
	return f, internal("read fault", err)
}

// SetFulfillmentFault stores an admin fault setting for the built-in
// fulfilment provider.
func (s *Service) SetFulfillmentFault(ctx context.Context, fail bool, delayMS int64) (Fault, error) {
	if err := s.setFault(ctx, faultFulfillment, fail, delayMS); err != nil {
		return Fault{}, err
	}
	return s.FulfillmentFault(ctx)
}

// SetPartnerFault stores an admin fault setting for a partner's simulator.
func (s *Service) SetPartnerFault(ctx context.Context, partnerID string, fail bool, delayMS int64) (Fault, error) {
	if _, ok := s.prog.Partner(partnerID); !ok {
		return Fault{}, unknownPartner(partnerID)
	}
	if err := s.setFault(ctx, faultPartner(partnerID), fail, delayMS); err != nil {
		return Fault{}, err
	}
	return s.PartnerFault(ctx, partnerID)
}

func (s *Service) setFault(ctx context.Context, target string, fail bool, delayMS int64) error {
	if delayMS < 0 || delayMS > maxFaultDelay {
		return errs.Coded(errs.Unprocessable, "invalid_delay", "delay_ms must be between 0 and %d", maxFaultDelay).With("field", "delay_ms")
	}
	f := int64(0)
	if fail {
		f = 1
	}
	now := s.now().UTC()
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_faults (target, fail, delay_ms, actor, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (target) DO UPDATE SET fail = excluded.fail, delay_ms = excluded.delay_ms, actor = excluded.actor, updated_at = excluded.updated_at`,
			target, f, delayMS, actorOf(ctx), db.Micros(now))
		return err
	})
	return internal("set fault", err)
}

func unknownPartner(id string) error {
	return errs.Coded(errs.NotFound, "unknown_partner", "no transfer partner with id %q", id).With("partner_id", id)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
	fault, err := f.s.fault(ctx, faultFulfillment, f.s.prog.Fulfillment)
	if err != nil {
		return "", fmt.Errorf("fulfilment fault setting: %w", err)
	}
	if err := sleepCtx(ctx, time.Duration(fault.DelayMS)*time.Millisecond); err != nil {
		return "", err
	}
	if fault.Fail {
		return "", fmt.Errorf("fulfilment of %s: %w", r.Option.ID, ErrRejected)
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
	fault, err := p.s.fault(ctx, faultPartner(r.Partner.ID), r.Partner.Simulate)
	if err != nil {
		return "", fmt.Errorf("partner fault setting: %w", err)
	}
	if err := sleepCtx(ctx, time.Duration(fault.DelayMS)*time.Millisecond); err != nil {
		return "", err
	}
	if fault.Fail {
		return "", fmt.Errorf("transfer to %s: %w", r.Partner.ID, ErrRejected)
	}
	return confirmationCode("TR-"), nil
}
