package catalog

import (
	"context"
	"net/http"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Client is the catalog over HTTP (split mode): the product lookups the
// checkout saga (Products) and the cart (Prices) need.
type Client struct{ peer *httpx.Peer }

// NewClient returns a Client for the catalog service at baseURL.
func NewClient(baseURL string, hc *http.Client, tokens httpx.TokenSource) *Client {
	return &Client{peer: httpx.NewPeer("catalog", baseURL, hc, tokens)}
}

// Products returns the products that exist among ids, by id.
func (c *Client) Products(ctx context.Context, ids []string) (map[string]Product, error) {
	if len(ids) == 0 {
		return map[string]Product{}, nil
	}
	var out batchResult
	// A read, though sent as POST to carry the ids: safe to repeat.
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/products/batch", Path: "/internal/v1/products/batch",
		Body: batchBody{IDs: ids}, Out: &out, Idempotent: true})
	if err != nil {
		return nil, err
	}
	if out.Products == nil {
		out.Products = map[string]Product{}
	}
	return out.Products, nil
}

// Prices returns the current price of each product that exists among ids.
func (c *Client) Prices(ctx context.Context, ids []string) (map[string]money.Money, error) {
	ps, err := c.Products(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]money.Money, len(ps))
	for id, p := range ps {
		out[id] = p.Price
	}
	return out, nil
}
