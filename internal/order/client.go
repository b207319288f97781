package order

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Client is the order service over HTTP (split mode), with the methods the
// checkout saga needs and the same results and errors as Service.
type Client struct{ peer *httpx.Peer }

// NewClient returns a Client for the order service at baseURL.
func NewClient(baseURL string, hc *http.Client, tokens httpx.TokenSource) *Client {
	return &Client{peer: httpx.NewPeer("order", baseURL, hc, tokens)}
}

func (c *Client) order(ctx context.Context, call httpx.Call) (Order, error) {
	var out orderJSON
	call.Out = &out
	if err := c.peer.Do(ctx, call); err != nil {
		return Order{}, err
	}
	return out.toOrder(), nil
}

// Create places a checkout's order (idempotent on CheckoutID), with the id
// no.ID when set.
func (c *Client) Create(ctx context.Context, no NewOrder) (Order, error) {
	return c.order(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/orders", Path: "/internal/v1/orders",
		Body: toCreateBody(no), IdempotencyKey: "order-create:" + no.CheckoutID})
}

// ByCheckout returns the order a checkout created, or errs NotFound CodeOrderNotFound.
func (c *Client) ByCheckout(ctx context.Context, checkoutID string) (Order, error) {
	return c.order(ctx, httpx.Call{Method: "GET", Route: "/internal/v1/orders/by-checkout/{checkout_id}",
		Path: "/internal/v1/orders/by-checkout/" + url.PathEscape(checkoutID), Expected: []string{CodeOrderNotFound}})
}

// Get returns an order.
func (c *Client) Get(ctx context.Context, id string) (Order, error) {
	return c.order(ctx, httpx.Call{Method: "GET", Route: "/internal/v1/orders/{id}", Path: "/internal/v1/orders/" + url.PathEscape(id)})
}

// Confirm confirms a paid order with the points it earned.
func (c *Client) Confirm(ctx context.Context, id string, pointsEarned int64) (Order, error) {
	return c.order(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/orders/{id}/confirm", Path: "/internal/v1/orders/" + url.PathEscape(id) + "/confirm",
		Body: confirmBody{PointsEarned: pointsEarned}, Idempotent: true})
}

// StartRefund records a refund of an order (idempotent on refundID).
func (c *Client) StartRefund(ctx context.Context, orderID, refundID string, amount *money.Money) (RefundPlan, error) {
	var out refundPlanJSON
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/orders/{id}/refunds", Path: "/internal/v1/orders/" + url.PathEscape(orderID) + "/refunds",
		Body: startRefundBody{RefundID: refundID, Amount: amount}, Out: &out, Idempotent: true})
	if err != nil {
		return RefundPlan{}, err
	}
	return RefundPlan{ID: out.ID, Order: out.Order.toOrder(), Amount: out.Amount, Full: out.Full, Done: out.Done}, nil
}

// FinishRefund marks a recorded refund done.
func (c *Client) FinishRefund(ctx context.Context, orderID, refundID string) (Order, error) {
	return c.order(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/orders/{id}/refunds/{refund_id}/finish",
		Path:       "/internal/v1/orders/" + url.PathEscape(orderID) + "/refunds/" + url.PathEscape(refundID) + "/finish",
		Idempotent: true})
}
