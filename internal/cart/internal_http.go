package cart

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// InternalRoutes are the service-to-service endpoints the checkout saga uses
// in split mode (see Client): service or admin tokens only.
func (s *Service) InternalRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/carts/{id}/validate", Summary: "Hold a cart for a checkout and check its prices",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleValidate},
		{Method: "POST", Pattern: "/internal/v1/carts/{id}/release", Summary: "Let go of a cart a checkout held",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleRelease},
	}
}

type validateBody struct {
	MemberID   string `json:"member_id"`
	CheckoutID string `json:"checkout_id"`
	// ReservationID labels the cart.validate span (see Service.Validate).
	ReservationID string `json:"reservation_id,omitempty"`
}

type validatedJSON struct {
	CartID   string      `json:"cart_id"`
	MemberID string      `json:"member_id,omitempty"`
	Items    []Item      `json:"items"`
	Total    money.Money `json:"total"`
}

func (s *Service) handleValidate(w http.ResponseWriter, r *http.Request) error {
	var b validateBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.CheckoutID == "" {
		return errCheckoutIDRequired
	}
	v, err := s.Validate(r.Context(), r.PathValue("id"), b.MemberID, b.CheckoutID, b.ReservationID)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, validatedJSON(v))
	return nil
}

type releaseBody struct {
	CheckoutID string `json:"checkout_id"`
}

func (s *Service) handleRelease(w http.ResponseWriter, r *http.Request) error {
	var b releaseBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.CheckoutID == "" {
		return errCheckoutIDRequired
	}
	id := r.PathValue("id")
	if err := s.Release(r.Context(), id, b.CheckoutID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"cart_id": id})
	return nil
}

var errCheckoutIDRequired = errs.Coded(errs.Invalid, "invalid_field", "checkout_id is required").With("field", "checkout_id")
