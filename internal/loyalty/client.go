package loyalty

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Client is the loyalty service over HTTP (split mode). It has the methods the
// checkout saga needs (holds, purchase earning, point refunds, purchase
// reversal) with the same signatures, results and errors as Service.
type Client struct{ peer *httpx.Peer }

// NewClient returns a Client for the loyalty service at baseURL.
func NewClient(baseURL string, hc *http.Client, tokens httpx.TokenSource) *Client {
	return &Client{peer: httpx.NewPeer("loyalty", baseURL, hc, tokens)}
}

// HoldPoints holds points for reference (idempotent on reference); not enough
// points is errs Unprocessable "insufficient_points" with its details.
func (c *Client) HoldPoints(ctx context.Context, memberID string, points int64, reference string) (string, error) {
	var out internalHoldResult
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/loyalty/holds", Path: "/internal/v1/loyalty/holds",
		Body: internalPointsBody{MemberID: memberID, Points: points, Reference: reference}, Out: &out, IdempotencyKey: "loyalty-hold:" + reference})
	return out.HoldID, err
}

// CapturePointsHold posts a hold (idempotent).
func (c *Client) CapturePointsHold(ctx context.Context, holdID string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/loyalty/holds/{id}/capture",
		Path: "/internal/v1/loyalty/holds/" + url.PathEscape(holdID) + "/capture", Idempotent: true})
}

// VoidPointsHold voids a hold (idempotent).
func (c *Client) VoidPointsHold(ctx context.Context, holdID string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/loyalty/holds/{id}/void",
		Path: "/internal/v1/loyalty/holds/" + url.PathEscape(holdID) + "/void", Idempotent: true})
}

// EarnPurchase credits the member for an order (idempotent per order).
func (c *Client) EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (EarnResult, error) {
	var out EarnResult
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/loyalty/purchases", Path: "/internal/v1/loyalty/purchases",
		Body: internalPurchaseBody{MemberID: memberID, OrderID: orderID, Amount: amount}, Out: &out, IdempotencyKey: "loyalty-earn:" + orderID})
	return out, err
}

// RefundPoints gives back points spent on a refunded order (idempotent on reference).
func (c *Client) RefundPoints(ctx context.Context, memberID string, points int64, reference string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/loyalty/point-refunds", Path: "/internal/v1/loyalty/point-refunds",
		Body: internalPointsBody{MemberID: memberID, Points: points, Reference: reference}, IdempotencyKey: "loyalty-refund:" + reference})
}

// ReversePurchase takes back the points an order earned (idempotent).
func (c *Client) ReversePurchase(ctx context.Context, memberID, orderID string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/loyalty/purchases/{order_id}/reversal",
		Path: "/internal/v1/loyalty/purchases/" + url.PathEscape(orderID) + "/reversal", Body: internalReversalBody{MemberID: memberID}, Idempotent: true})
}
