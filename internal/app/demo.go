package app

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

// demoMembers are created on first start so the member portal and the
// pay-with-points checkout have someone to show. Their activity ids are fixed,
// so seeding twice (or from two replicas) credits nothing twice.
var demoMembers = []struct {
	id, name, email string
	flights         []program.Flight
}{
	{"ava", "Ava Lindqvist", "ava@example.test", []program.Flight{
		{DistanceMiles: 5837, FareClass: "J", Cabin: "business", Origin: "JFK", Destination: "NRT"},
		{DistanceMiles: 5837, FareClass: "J", Cabin: "business", Origin: "NRT", Destination: "JFK"},
		{DistanceMiles: 3451, FareClass: "F", Cabin: "first", Origin: "JFK", Destination: "LHR"},
	}},
	{"ben", "Ben Okafor", "ben@example.test", []program.Flight{
		{DistanceMiles: 2475, FareClass: "Y", Cabin: "economy", Origin: "JFK", Destination: "LAX"},
	}},
	{"chen", "Chen Wei", "chen@example.test", nil},
}

// seedDemo fills an empty database with the demo catalog, members and a promotion.
// In split mode each half is seeded by the process that runs its service
// (a nil service is skipped).
func seedDemo(ctx context.Context, cat *catalog.Service, loy *loyalty.Service) error {
	if cat != nil {
		if _, err := cat.SeedDemo(ctx); err != nil {
			return err
		}
	}
	if loy == nil {
		return nil
	}
	for _, m := range demoMembers {
		_, err := loy.CreateMember(ctx, loyalty.NewMember{ID: m.id, Name: m.name, Email: m.email})
		if err != nil && !errs.Is(err, loyalty.CodeMemberExists) {
			return err
		}
		for i, f := range m.flights {
			_, err := loy.Earn(ctx, m.id, loyalty.Activity{
				Activity:   program.Activity{Type: program.ActivityFlight, Flight: &f},
				ExternalID: fmt.Sprintf("demo-%s-%d", m.id, i+1),
			})
			if err != nil {
				return fmt.Errorf("demo flight for %s: %w", m.id, err)
			}
		}
	}
	start := time.Now().UTC().Truncate(24 * time.Hour)
	_, err := loy.CreatePromotion(ctx, program.Promotion{
		ID: "demo-double-hotel", Name: "Double points on hotel stays",
		Start: start, End: start.AddDate(1, 0, 0),
		ActivityTypes: []string{program.ActivityHotel}, MultiplierBP: 20000,
	})
	if err != nil && errs.KindOf(err) != errs.Conflict {
		return err
	}
	return nil
}
