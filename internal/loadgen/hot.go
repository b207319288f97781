package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/godwit-dev/godwit/api/client"
)

// Concentrated load (Config.HotMember, Config.HotProduct): the same operations
// aimed at one row, so a run measures how the server serialises writers on a
// single balance or a single stock level rather than how it spreads them.

// hotMember returns the member redemptions and transfers act on, or "" when
// the load is spread.
func (g *gen) hotMember() string {
	if !g.cfg.HotMember || len(g.members) == 0 {
		return ""
	}
	return g.members[0]
}

// hotProduct returns the index in g.products of the product every checkout
// buys, or -1 when checkouts spread over the catalogue.
func (g *gen) hotProduct() int {
	if !g.cfg.HotProduct || len(g.products) == 0 {
		return -1
	}
	return 0
}

// hotProductID is the hot product's id, or "".
func (g *gen) hotProductID() string {
	if i := g.hotProduct(); i >= 0 {
		return g.products[i].Id
	}
	return ""
}

// actingMember picks the member a redemption or transfer acts for.
func (g *gen) actingMember(rng *rand.Rand) string {
	if hot := g.hotMember(); hot != "" {
		return hot
	}
	return g.pickMember(rng)
}

// cartProducts picks the products of one checkout's cart: one to three
// distinct ones, or only the hot product.
func (g *gen) cartProducts(rng *rand.Rand) []int {
	if i := g.hotProduct(); i >= 0 {
		return []int{i}
	}
	lines := min(1+rng.IntN(3), len(g.products))
	chosen := make([]int, 0, lines)
	for len(chosen) < lines {
		i := rng.IntN(len(g.products))
		if !slices.Contains(chosen, i) {
			chosen = append(chosen, i)
		}
	}
	return chosen
}

// stockFor is the quantity setup makes available for a product: a flash sale's
// product gets a finite stock so the run can sell it out.
func (g *gen) stockFor(productID string) int64 {
	if g.cfg.HotProduct && productID == g.hotProductID() {
		return g.cfg.HotProductStock
	}
	return g.cfg.Stock
}

// fundHotMember credits the hot member generously through an admin
// adjustment, so a run measures contention on its balance rather than how fast
// it runs out of points.
func (g *gen) fundHotMember(ctx context.Context, id string) error {
	body := client.AdjustmentRequest{Points: g.cfg.HotMemberPoints, Reason: "loadgen " + g.runID + ": hot member funding"}
	rsp, err := g.c.api.AdjustPoints(ctx, id, &client.AdjustPointsParams{IdempotencyKey: idemKey()}, body, bearer(g.cfg.AdminToken)...)
	if o := g.c.result(ctx, rsp, err, nil); !o.ok() {
		return fmt.Errorf("fund hot member %s: POST /v1/admin/members/%s/adjustments: %s", id, id, o)
	}
	return nil
}
