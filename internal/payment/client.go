package payment

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Client is the payment service over HTTP (split mode), with the methods the
// checkout saga needs and the same results and errors as Service.
type Client struct{ peer *httpx.Peer }

// NewClient returns a Client for the payment service at baseURL.
func NewClient(baseURL string, hc *http.Client, tokens httpx.TokenSource) *Client {
	return &Client{peer: httpx.NewPeer("payment", baseURL, hc, tokens)}
}

// Charge charges req; a decline is errs PaymentRequired "payment_declined"
// wrapping a *DeclineError, as from Service.
func (c *Client) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	var out chargeJSON
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/payments/charges", Path: "/internal/v1/payments/charges",
		Body:           chargeBody{IdempotencyKey: req.IdempotencyKey, Amount: req.Amount, Token: req.Token, Description: req.Description, OrderID: req.OrderID},
		Out:            &out,
		IdempotencyKey: "payment-charge:" + req.IdempotencyKey})
	if err != nil {
		return Charge{}, withDecline(err)
	}
	return out.toCharge(), nil
}

// withDecline restores the *DeclineError a decline carries in process.
func withDecline(err error) error {
	e, ok := errs.As(err)
	if !ok || e.Code != CodePaymentDeclined {
		return err
	}
	code, _ := e.Details["decline_code"].(string)
	soft, _ := e.Details["retryable"].(bool)
	return e.Wrap(&DeclineError{Code: code, Soft: soft})
}

// Lookup returns the charge made under idempotencyKey, or errs NotFound CodeChargeNotFound.
func (c *Client) Lookup(ctx context.Context, idempotencyKey string) (Charge, error) {
	var out chargeJSON
	err := c.peer.Do(ctx, httpx.Call{Method: "GET", Route: "/internal/v1/payments/charges/by-key/{key}",
		Path: "/internal/v1/payments/charges/by-key/" + url.PathEscape(idempotencyKey), Out: &out, Expected: []string{CodeChargeNotFound}})
	if err != nil {
		return Charge{}, err
	}
	return out.toCharge(), nil
}

// Retrieve returns a charge's current state, or errs NotFound CodeChargeNotFound.
func (c *Client) Retrieve(ctx context.Context, chargeID string) (Charge, error) {
	var out chargeJSON
	err := c.peer.Do(ctx, httpx.Call{Method: "GET", Route: "/internal/v1/payments/charges/{id}",
		Path: "/internal/v1/payments/charges/" + url.PathEscape(chargeID), Out: &out, Expected: []string{CodeChargeNotFound}})
	if err != nil {
		return Charge{}, err
	}
	return out.toCharge(), nil
}

// Cancel cancels a charge that has not moved money (idempotent).
func (c *Client) Cancel(ctx context.Context, chargeID string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/payments/charges/{id}/cancel",
		Path: "/internal/v1/payments/charges/" + url.PathEscape(chargeID) + "/cancel", Idempotent: true, Expected: []string{CodeChargeNotCancelable}})
}

// Void cancels a charge (idempotent).
func (c *Client) Void(ctx context.Context, chargeID string) (Charge, error) {
	var out chargeJSON
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/payments/charges/{id}/void",
		Path: "/internal/v1/payments/charges/" + url.PathEscape(chargeID) + "/void", Out: &out, Idempotent: true})
	if err != nil {
		return Charge{}, err
	}
	return out.toCharge(), nil
}

// Refund refunds amount of a charge, idempotently on key.
func (c *Client) Refund(ctx context.Context, chargeID string, amount money.Money, key string) (Refund, error) {
	var out Refund
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/payments/charges/{id}/refunds",
		Path: "/internal/v1/payments/charges/" + url.PathEscape(chargeID) + "/refunds",
		Body: refundBody{Amount: amount, Key: key}, Out: &out, IdempotencyKey: "payment-refund:" + key})
	return out, err
}
