package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/godwit-dev/godwit/api/client"
)

func (g *gen) browse(ctx context.Context) outcome {
	rsp, err := g.c.api.ListProducts(ctx)
	return g.c.result(ctx, rsp, err, nil)
}

// memberToken returns a member's bearer token, minting it once.
func (g *gen) memberToken(id string) (string, error) {
	g.tokenMu.Lock()
	tok, ok := g.tokens[id]
	g.tokenMu.Unlock()
	if ok {
		return tok, nil
	}
	tok, err := g.cfg.MemberToken(id)
	if err != nil {
		return "", err
	}
	g.tokenMu.Lock()
	g.tokens[id] = tok
	g.tokenMu.Unlock()
	return tok, nil
}

// actingToken is the token a member's own operations (redeem, transfer) use.
func (g *gen) actingToken(member string) (string, outcome) {
	if g.cfg.MemberToken == nil {
		return g.serviceToken, okOutcome
	}
	tok, err := g.memberToken(member)
	if err != nil {
		return "", failed(CodeMemberToken)
	}
	return tok, okOutcome
}

func (g *gen) pickMember(rng *rand.Rand) string {
	return g.members[rng.IntN(len(g.members))]
}

// checkout creates a cart, adds one to three distinct products (or only the
// hot product) and checks out, as a member (with the member's token, sometimes
// paying partly with points) or as a guest.
func (g *gen) checkout(ctx context.Context, rng *rand.Rand) outcome {
	var member, token string
	if len(g.members) > 0 && g.cfg.MemberToken != nil && rng.Float64() >= g.cfg.GuestShare {
		member = g.pickMember(rng)
		tok, err := g.memberToken(member)
		if err != nil {
			return failed(CodeMemberToken)
		}
		token = tok
	}
	var cart client.Cart
	rsp, err := g.c.api.CreateCart(ctx, client.CartInput{}, bearer(token)...)
	if o := g.c.result(ctx, rsp, err, &cart); !o.ok() {
		return o
	}
	if cart.Id == "" {
		return outcome{status: 201, code: CodeBadResponse, class: classFailed}
	}

	var total int64
	for _, i := range g.cartProducts(rng) {
		p := g.products[i]
		total += p.Price.Amount
		rsp, err := g.c.api.AddCartItem(ctx, cart.Id, client.AddItemInput{ProductId: p.Id, Quantity: 1}, bearer(token)...)
		if o := g.c.result(ctx, rsp, err, nil); !o.ok() {
			return o
		}
	}

	body := client.CheckoutRequest{CartId: cart.Id}
	body.Payment.Token = g.cfg.PayToken
	if rng.Float64() < g.cfg.DeclineShare {
		body.Payment.Token = g.cfg.DeclineToken
	}
	if member != "" {
		// The built-in program values a point at one minor unit; never offer
		// more than half the order.
		if rng.Float64() < g.cfg.PointsShare {
			points := min(100*int64(1+rng.IntN(10)), total/2)
			body.PointsToRedeem = &points
		}
	} else {
		email := fmt.Sprintf("loadgen+%s-%d@example.test", g.runID, rng.Uint32())
		body.Email = &email
	}
	rsp, err = g.c.api.Checkout(ctx, &client.CheckoutParams{IdempotencyKey: newID()}, body, bearer(token)...)
	return g.c.result(ctx, rsp, err, nil)
}

var (
	fareClasses = []string{"Y", "B", "M", "J", "F", "Q", "T"}
	airports    = []string{"JFK", "LAX", "SFO", "ORD", "SEA", "BOS", "MIA", "DEN", "LHR", "NRT", "CDG", "SYD"}
	// Airline, airline (4511), lodging, hotel (7011), groceries, restaurants.
	merchantCategories = []string{"3001", "4511", "3502", "7011", "5411", "5812"}
)

func cabinFor(fare string) string {
	switch fare {
	case "F":
		return "first"
	case "J":
		return "business"
	default:
		return "economy"
	}
}

func flightActivity(rng *rand.Rand, miles int64, fare string, at time.Time) client.Activity {
	o := rng.IntN(len(airports))
	d := (o + 1 + rng.IntN(len(airports)-1)) % len(airports)
	return client.Activity{
		Type:       client.ActivityTypeFlight,
		ExternalId: newID(),
		OccurredAt: occurred(at),
		Flight: &client.FlightDetails{
			DistanceMiles: &miles,
			FareClass:     &fare,
			Cabin:         ptr(cabinFor(fare)),
			Origin:        &airports[o],
			Destination:   &airports[d],
		},
	}
}

// occurred is an activity's time as loadgen sends it: UTC, whole seconds.
func occurred(at time.Time) *time.Time {
	t := at.UTC().Truncate(time.Second)
	return &t
}

func ptr[T any](v T) *T { return &v }

// randomActivity draws a flight (60%), hotel stay (20%) or card spend (20%)
// that happened in the last two days.
func randomActivity(rng *rand.Rand, now time.Time) client.Activity {
	at := now.Add(-time.Duration(rng.IntN(48*60)) * time.Minute)
	switch n := rng.IntN(10); {
	case n < 6:
		return flightActivity(rng, 300+rng.Int64N(5701), fareClasses[rng.IntN(len(fareClasses))], at)
	case n < 8:
		nights := 1 + rng.Int64N(4)
		return client.Activity{
			Type: client.ActivityTypeHotel, ExternalId: newID(), OccurredAt: occurred(at),
			Hotel: &client.HotelDetails{Amount: &client.Money{Amount: nights * (8000 + rng.Int64N(22001)), Currency: "USD"}, Nights: &nights},
		}
	default:
		return client.Activity{
			Type: client.ActivityTypeCardSpend, ExternalId: newID(), OccurredAt: occurred(at),
			CardSpend: &client.CardSpendDetails{
				Amount:           &client.Money{Amount: 500 + rng.Int64N(49501), Currency: "USD"},
				MerchantCategory: &merchantCategories[rng.IntN(len(merchantCategories))],
			},
		}
	}
}

func (g *gen) earn(ctx context.Context, rng *rand.Rand) outcome {
	member := g.pickMember(rng)
	return g.postActivity(ctx, member, randomActivity(rng, time.Now()))
}

func (g *gen) postActivity(ctx context.Context, member string, a client.Activity) outcome {
	rsp, err := g.c.api.PostActivity(ctx, member, &client.PostActivityParams{IdempotencyKey: idemKey()}, a, bearer(g.serviceToken)...)
	return g.c.result(ctx, rsp, err, nil)
}

// redeem mostly picks one of the cheapest third of the catalogue, which
// members can afford; one time in ten any option, which often they cannot.
func (g *gen) redeem(ctx context.Context, rng *rand.Rand) outcome {
	member := g.actingMember(rng)
	token, o := g.actingToken(member)
	if !o.ok() {
		return o
	}
	n := len(g.options)
	if rng.IntN(10) != 0 {
		n = max(1, (n+2)/3)
	}
	opt := g.options[rng.IntN(n)]
	rsp, err := g.c.api.Redeem(ctx, member, &client.RedeemParams{IdempotencyKey: idemKey()}, client.RedeemRequest{OptionId: opt.Id}, bearer(token)...)
	return g.c.result(ctx, rsp, err, nil)
}

// transfer sends points from a member (the hot one, if any) to a partner
// (PartnerShare of the time) or to another member.
func (g *gen) transfer(ctx context.Context, rng *rand.Rand) outcome {
	member := g.actingMember(rng)
	token, o := g.actingToken(member)
	if !o.ok() {
		return o
	}
	var body client.TransferRequest
	if len(g.cfg.Partners) > 0 && (len(g.members) < 2 || rng.Float64() < g.cfg.PartnerShare) {
		body = client.TransferRequest{PartnerId: &g.cfg.Partners[rng.IntN(len(g.cfg.Partners))], Points: g.cfg.PartnerPoints}
	} else {
		to := member
		for to == member {
			to = g.pickMember(rng)
		}
		body = client.TransferRequest{ToMemberId: &to, Points: g.cfg.MemberTransferPoints}
	}
	rsp, err := g.c.api.Transfer(ctx, member, &client.TransferParams{IdempotencyKey: idemKey()}, body, bearer(token)...)
	return g.c.result(ctx, rsp, err, nil)
}
