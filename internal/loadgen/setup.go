package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/godwit-dev/godwit/api/client"
)

// startingFlights is how many flights setup credits each new member with. In
// the built-in program a 5,000-mile F fare earns 7,500 points, so members
// start with 22,500 points: enough for several cheap redemptions and
// pay-with-points checkouts, yet below the first status tier.
const (
	startingFlights     = 3
	startingFlightMiles = 5000
	startingFlightFare  = "F"
)

// prepare learns the catalogue and redemption options the mix needs, runs
// setup when asked, and checks that every operation in the mix can run.
func (g *gen) prepare(ctx context.Context) error {
	if g.mix.has(OpCheckout) || g.cfg.Setup {
		if err := g.loadProducts(ctx); err != nil {
			return err
		}
		if g.mix.has(OpCheckout) && len(g.products) == 0 {
			return errors.New("loadgen: checkout is in the mix but GET /v1/products lists no products (start the server with --demo for the demo catalogue, or add products)")
		}
	}
	if g.mix.has(OpRedeem) {
		if err := g.loadOptions(ctx); err != nil {
			return err
		}
	}
	if g.cfg.Setup {
		if err := g.setup(ctx); err != nil {
			return err
		}
	}
	for _, id := range g.cfg.MemberIDs {
		if id != "" && !slices.Contains(g.members, id) {
			g.members = append(g.members, id)
		}
	}
	for _, op := range []string{OpEarn, OpRedeem, OpTransfer} {
		if g.mix.has(op) && len(g.members) == 0 {
			return fmt.Errorf("loadgen: %s is in the mix but no members are known: enable Setup or pass MemberIDs", op)
		}
	}
	if g.mix.has(OpTransfer) && len(g.members) < 2 && len(g.cfg.Partners) == 0 {
		return errors.New("loadgen: transfer needs two members or a partner")
	}
	return nil
}

func (g *gen) adminOrService() string {
	if g.cfg.AdminToken != "" {
		return g.cfg.AdminToken
	}
	return g.serviceToken
}

func (g *gen) loadProducts(ctx context.Context) error {
	var body client.ProductList
	rsp, err := g.c.api.ListProducts(ctx)
	if o := g.c.result(ctx, rsp, err, &body); !o.ok() {
		return fmt.Errorf("loadgen: GET /v1/products: %s", o)
	}
	if body.Products != nil {
		g.products = slices.DeleteFunc(*body.Products, func(p client.Product) bool { return p.Id == "" })
	}
	return nil
}

func (g *gen) loadOptions(ctx context.Context) error {
	var body client.RedemptionOptionList
	rsp, err := g.c.api.ListRedemptionOptions(ctx, bearer(g.adminOrService())...)
	if o := g.c.result(ctx, rsp, err, &body); !o.ok() {
		return fmt.Errorf("loadgen: GET /v1/redemption-options: %s", o)
	}
	g.options = slices.DeleteFunc(body.Options, func(o client.RedemptionOption) bool { return o.Id == "" })
	if len(g.options) == 0 {
		return errors.New("loadgen: redeem is in the mix but GET /v1/redemption-options lists no options")
	}
	slices.SortStableFunc(g.options, func(a, b client.RedemptionOption) int { return cmp.Compare(a.Points, b.Points) })
	return nil
}

// setup stocks every product and creates cfg.Members members named
// lg-<run id>-<n>, each credited with a few flights (and the hot member, if
// any, with HotMemberPoints), using VUs workers.
func (g *gen) setup(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	jobs := make(chan func(context.Context) error)
	var wg sync.WaitGroup
	for range min(max(g.cfg.VUs, 1), 32) {
		wg.Go(func() {
			for job := range jobs {
				if err := job(ctx); err != nil {
					cancel(err)
				}
			}
		})
	}
	submit := func(job func(context.Context) error) bool {
		select {
		case jobs <- job:
			return true
		case <-ctx.Done():
			return false
		}
	}

	ids := make([]string, g.cfg.Members)
	for n := range ids {
		ids[n] = fmt.Sprintf("lg-%s-%d", g.runID, n)
	}
	for _, p := range g.products {
		if !submit(func(ctx context.Context) error { return g.stock(ctx, p.Id, g.stockFor(p.Id)) }) {
			break
		}
	}
	for n, id := range ids {
		// The first member becomes the hot one (it is members[0] below).
		fund := n == 0 && g.cfg.HotMember
		if !submit(func(ctx context.Context) error { return g.createMember(ctx, id, n, fund) }) {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("loadgen: setup: %w", err)
	}
	g.members = append(g.members, ids...)
	return nil
}

func (g *gen) stock(ctx context.Context, productID string, available int64) error {
	rsp, err := g.c.api.SetStock(ctx, productID, client.StockInput{Available: available}, bearer(g.cfg.AdminToken)...)
	if o := g.c.result(ctx, rsp, err, nil); !o.ok() {
		return fmt.Errorf("PUT /v1/admin/inventory/%s: %s", productID, o)
	}
	return nil
}

// createMember creates member number n, credits its starting flights and,
// when fund is set, the hot member's adjustment.
func (g *gen) createMember(ctx context.Context, id string, n int, fund bool) error {
	body := client.NewMember{Id: &id, Name: fmt.Sprintf("Loadgen Member %d", n), Email: fmt.Sprintf("loadgen+%s-%d@example.test", g.runID, n)}
	rsp, err := g.c.api.CreateMember(ctx, nil, body, bearer(g.cfg.AdminToken)...)
	if o := g.c.result(ctx, rsp, err, nil); !o.ok() {
		return fmt.Errorf("create member %s: POST /v1/members: %s", id, o)
	}
	rng := g.seqRand(3, uint64(n))
	now := time.Now()
	for i := range startingFlights {
		a := flightActivity(rng, startingFlightMiles, startingFlightFare, now.Add(-time.Duration(i+1)*time.Hour))
		if o := g.postActivity(ctx, id, a); !o.ok() {
			return fmt.Errorf("credit member %s: POST /v1/members/%s/activities: %s", id, id, o)
		}
	}
	if fund {
		return g.fundHotMember(ctx, id)
	}
	return nil
}
