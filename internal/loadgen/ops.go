package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"
)

// product is what the load generator needs from GET /v1/products.
type product struct {
	ID    string `json:"id"`
	Price money  `json:"price"`
}

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// redemptionOption is what it needs from GET /v1/redemption-options.
type redemptionOption struct {
	ID     string `json:"id"`
	Points int64  `json:"points"`
}

func (g *gen) browse(ctx context.Context) outcome {
	return g.c.do(ctx, request{method: "GET", path: "/v1/products"})
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

func memberPath(id, rest string) string {
	return "/v1/members/" + url.PathEscape(id) + rest
}

type cartItem struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

type payment struct {
	Token string `json:"token"`
}

type checkoutBody struct {
	CartID         string  `json:"cart_id"`
	Payment        payment `json:"payment"`
	PointsToRedeem int64   `json:"points_to_redeem"`
	Email          string  `json:"email,omitempty"`
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
	var cart struct {
		ID string `json:"id"`
	}
	if o := g.c.do(ctx, request{method: "POST", path: "/v1/carts", token: token, body: struct{}{}, out: &cart}); !o.ok() {
		return o
	}
	if cart.ID == "" {
		return outcome{status: 201, code: CodeBadResponse, class: classFailed}
	}
	cartPath := "/v1/carts/" + url.PathEscape(cart.ID)

	var total int64
	for _, i := range g.cartProducts(rng) {
		p := g.products[i]
		total += p.Price.Amount
		item := cartItem{ProductID: p.ID, Quantity: 1}
		if o := g.c.do(ctx, request{method: "POST", path: cartPath + "/items", token: token, body: item}); !o.ok() {
			return o
		}
	}

	body := checkoutBody{CartID: cart.ID, Payment: payment{Token: g.cfg.PayToken}}
	if rng.Float64() < g.cfg.DeclineShare {
		body.Payment.Token = g.cfg.DeclineToken
	}
	if member != "" {
		// The built-in program values a point at one minor unit; never offer
		// more than half the order.
		if rng.Float64() < g.cfg.PointsShare {
			body.PointsToRedeem = min(100*int64(1+rng.IntN(10)), total/2)
		}
	} else {
		body.Email = fmt.Sprintf("loadgen+%s-%d@example.test", g.runID, rng.Uint32())
	}
	return g.c.do(ctx, request{method: "POST", path: "/v1/checkout", token: token, idem: true, body: body})
}

type flightDetails struct {
	DistanceMiles int64  `json:"distance_miles"`
	FareClass     string `json:"fare_class"`
	Cabin         string `json:"cabin"`
	Origin        string `json:"origin"`
	Destination   string `json:"destination"`
}

type hotelDetails struct {
	Amount money `json:"amount"`
	Nights int   `json:"nights"`
}

type cardSpendDetails struct {
	Amount           money  `json:"amount"`
	MerchantCategory string `json:"merchant_category"`
}

type activityBody struct {
	Type       string            `json:"type"`
	ExternalID string            `json:"external_id"`
	OccurredAt string            `json:"occurred_at"`
	Flight     *flightDetails    `json:"flight,omitempty"`
	Hotel      *hotelDetails     `json:"hotel,omitempty"`
	CardSpend  *cardSpendDetails `json:"card_spend,omitempty"`
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

func flightActivity(rng *rand.Rand, miles int64, fare string, at time.Time) activityBody {
	o := rng.IntN(len(airports))
	d := (o + 1 + rng.IntN(len(airports)-1)) % len(airports)
	return activityBody{
		Type:       "flight",
		ExternalID: newID(),
		OccurredAt: at.UTC().Format(time.RFC3339),
		Flight: &flightDetails{
			DistanceMiles: miles,
			FareClass:     fare,
			Cabin:         cabinFor(fare),
			Origin:        airports[o],
			Destination:   airports[d],
		},
	}
}

// randomActivity draws a flight (60%), hotel stay (20%) or card spend (20%)
// that happened in the last two days.
func randomActivity(rng *rand.Rand, now time.Time) activityBody {
	at := now.Add(-time.Duration(rng.IntN(48*60)) * time.Minute)
	switch n := rng.IntN(10); {
	case n < 6:
		return flightActivity(rng, 300+rng.Int64N(5701), fareClasses[rng.IntN(len(fareClasses))], at)
	case n < 8:
		nights := 1 + rng.IntN(4)
		return activityBody{
			Type: "hotel", ExternalID: newID(), OccurredAt: at.UTC().Format(time.RFC3339),
			Hotel: &hotelDetails{Amount: money{Amount: int64(nights) * (8000 + rng.Int64N(22001)), Currency: "USD"}, Nights: nights},
		}
	default:
		return activityBody{
			Type: "card_spend", ExternalID: newID(), OccurredAt: at.UTC().Format(time.RFC3339),
			CardSpend: &cardSpendDetails{
				Amount:           money{Amount: 500 + rng.Int64N(49501), Currency: "USD"},
				MerchantCategory: merchantCategories[rng.IntN(len(merchantCategories))],
			},
		}
	}
}

func (g *gen) earn(ctx context.Context, rng *rand.Rand) outcome {
	member := g.pickMember(rng)
	return g.postActivity(ctx, member, randomActivity(rng, time.Now()))
}

func (g *gen) postActivity(ctx context.Context, member string, a activityBody) outcome {
	return g.c.do(ctx, request{method: "POST", path: memberPath(member, "/activities"), token: g.serviceToken, idem: true, body: a})
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
	body := struct {
		OptionID string `json:"option_id"`
	}{opt.ID}
	return g.c.do(ctx, request{method: "POST", path: memberPath(member, "/redemptions"), token: token, idem: true, body: body})
}

type transferBody struct {
	ToMemberID string `json:"to_member_id,omitempty"`
	PartnerID  string `json:"partner_id,omitempty"`
	Points     int64  `json:"points"`
}

// transfer sends points from a member (the hot one, if any) to a partner
// (PartnerShare of the time) or to another member.
func (g *gen) transfer(ctx context.Context, rng *rand.Rand) outcome {
	member := g.actingMember(rng)
	token, o := g.actingToken(member)
	if !o.ok() {
		return o
	}
	var body transferBody
	if len(g.cfg.Partners) > 0 && (len(g.members) < 2 || rng.Float64() < g.cfg.PartnerShare) {
		body = transferBody{PartnerID: g.cfg.Partners[rng.IntN(len(g.cfg.Partners))], Points: g.cfg.PartnerPoints}
	} else {
		to := member
		for to == member {
			to = g.pickMember(rng)
		}
		body = transferBody{ToMemberID: to, Points: g.cfg.MemberTransferPoints}
	}
	return g.c.do(ctx, request{method: "POST", path: memberPath(member, "/transfers"), token: token, idem: true, body: body})
}
