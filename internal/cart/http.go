package cart

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the cart endpoints. Guests use carts without a token: a guest
// cart's id (random, unguessable) is its capability. A member's cart is only
// readable and changeable with that member's token (or admin/service).
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/v1/carts", Summary: "Create a cart (a member's with a member token, else a guest's)", Access: auth.Public, Handler: s.handleCreate},
		{Method: "GET", Pattern: "/v1/carts/{id}", Summary: "Read a cart", Access: auth.Public, Handler: s.handleGet},
		{Method: "POST", Pattern: "/v1/carts/{id}/items", Summary: "Add a product to a cart at its current price", Access: auth.Public, Handler: s.handleAdd},
		{Method: "PUT", Pattern: "/v1/carts/{id}/items/{product_id}", Summary: "Set a line's quantity (0 removes it)", Access: auth.Public, Handler: s.handleSet},
		{Method: "DELETE", Pattern: "/v1/carts/{id}/items/{product_id}", Summary: "Remove a line", Access: auth.Public, Handler: s.handleRemove},
	}
}

type createBody struct{}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var b createBody
	if r.ContentLength != 0 {
		if err := httpx.Decode(r, &b); err != nil {
			return err
		}
	}
	memberID := ""
	if p := auth.FromContext(r.Context()); p != nil && p.Scope == auth.ScopeMember {
		memberID = p.Subject
	}
	c, err := s.Create(r.Context(), memberID)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, c)
	return nil
}

// authorize lets a caller see or change cart id.
func (s *Service) authorize(r *http.Request, id string) error {
	c, err := s.Get(r.Context(), id)
	if err != nil {
		return err
	}
	if c.MemberID == "" {
		return nil
	}
	p := auth.FromContext(r.Context())
	if p == nil {
		return errs.Coded(errs.Unauthorized, "unauthenticated", "this member's cart needs the member's bearer token")
	}
	if p.Scope == auth.ScopeMember && p.Subject != c.MemberID {
		return errs.Coded(errs.Forbidden, "forbidden", "a member token may only access its own member's cart")
	}
	return nil
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.authorize(r, id); err != nil {
		return err
	}
	c, err := s.Get(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}

type addBody struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

func (s *Service) handleAdd(w http.ResponseWriter, r *http.Request) error {
	// Who may touch the cart is decided before anything about the body is said.
	id := r.PathValue("id")
	if err := s.authorize(r, id); err != nil {
		return err
	}
	var b addBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.ProductID == "" {
		return errs.Coded(errs.Invalid, "invalid_field", "product_id is required").With("field", "product_id")
	}
	c, err := s.AddItem(r.Context(), id, b.ProductID, b.Quantity)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}

type setBody struct {
	Quantity int64 `json:"quantity"`
}

func (s *Service) handleSet(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.authorize(r, id); err != nil {
		return err
	}
	var b setBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	c, err := s.SetQuantity(r.Context(), id, r.PathValue("product_id"), b.Quantity)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Service) handleRemove(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.authorize(r, id); err != nil {
		return err
	}
	c, err := s.SetQuantity(r.Context(), id, r.PathValue("product_id"), 0)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}
