package cart

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Client is the cart service over HTTP (split mode), with the methods the
// checkout saga needs and the same results and errors as Service.
type Client struct{ peer *httpx.Peer }

// NewClient returns a Client for the cart service at baseURL.
func NewClient(baseURL string, hc *http.Client, tokens httpx.TokenSource) *Client {
	return &Client{peer: httpx.NewPeer("cart", baseURL, hc, tokens)}
}

// Validate holds the cart for checkoutID and checks its prices; reservationID
// labels the cart.validate span.
func (c *Client) Validate(ctx context.Context, cartID, memberID, checkoutID, reservationID string) (Validated, error) {
	var out validatedJSON
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/carts/{id}/validate", Path: "/internal/v1/carts/" + url.PathEscape(cartID) + "/validate",
		Body: validateBody{MemberID: memberID, CheckoutID: checkoutID, ReservationID: reservationID}, Out: &out, IdempotencyKey: "cart-validate:" + checkoutID})
	if err != nil {
		return Validated{}, err
	}
	return Validated(out), nil
}

// Release lets go of a cart held by checkoutID (idempotent).
func (c *Client) Release(ctx context.Context, cartID, checkoutID string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/carts/{id}/release", Path: "/internal/v1/carts/" + url.PathEscape(cartID) + "/release",
		Body: releaseBody{CheckoutID: checkoutID}, Idempotent: true})
}
