package inventory

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Client is the inventory service over HTTP (split mode). It has the methods
// the checkout saga needs, with the same results and errors as Service.
type Client struct{ peer *httpx.Peer }

// NewClient returns a Client for the inventory service at baseURL. hc carries
// the per-attempt timeout and the instrumented transport; tokens authenticates.
func NewClient(baseURL string, hc *http.Client, tokens httpx.TokenSource) *Client {
	return &Client{peer: httpx.NewPeer("inventory", baseURL, hc, tokens)}
}

// Reserve reserves items under reference (idempotent on reference).
func (c *Client) Reserve(ctx context.Context, reference string, items []Item) (Reservation, error) {
	var out Reservation
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/inventory/reservations", Path: "/internal/v1/inventory/reservations",
		Body: reserveBody{Reference: reference, Items: items}, Out: &out, IdempotencyKey: "inventory-reserve:" + reference})
	return out, err
}

// Commit commits a held reservation.
func (c *Client) Commit(ctx context.Context, reservationID string) error {
	return c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/inventory/reservations/{id}/commit",
		Path: "/internal/v1/inventory/reservations/" + url.PathEscape(reservationID) + "/commit", Idempotent: true})
}

// Release releases a held reservation and reports whether this call released it.
func (c *Client) Release(ctx context.Context, reservationID string) (bool, error) {
	var out releaseResult
	err := c.peer.Do(ctx, httpx.Call{Method: "POST", Route: "/internal/v1/inventory/reservations/{id}/release",
		Path: "/internal/v1/inventory/reservations/" + url.PathEscape(reservationID) + "/release", Out: &out, Idempotent: true})
	return out.Released, err
}

// ReservationByReference returns the reservation made under reference, or
// errs NotFound CodeReservationNotFound.
func (c *Client) ReservationByReference(ctx context.Context, reference string) (Reservation, error) {
	var out Reservation
	err := c.peer.Do(ctx, httpx.Call{Method: "GET", Route: "/internal/v1/inventory/reservations/by-reference/{ref}",
		Path: "/internal/v1/inventory/reservations/by-reference/" + url.PathEscape(reference), Out: &out, Expected: []string{CodeReservationNotFound}})
	return out, err
}

var errInvalidReference = errs.Coded(errs.Invalid, "invalid_field", "reference is required").With("field", "reference")
