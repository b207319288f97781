package catalog

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the catalog's HTTP endpoints.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/products", Summary: "List products with price and available stock", Access: auth.Public, Handler: s.handleList},
		{Method: "GET", Pattern: "/v1/products/{id}", Summary: "One product", Access: auth.Public, Handler: s.handleGet},
		{Method: "POST", Pattern: "/v1/admin/products", Summary: "Create a product", Access: auth.AdminOnly, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCreate},
		{Method: "PUT", Pattern: "/v1/admin/products/{id}", Summary: "Update a product's sku, name and price", Access: auth.AdminOnly, Handler: s.handleUpdate},
		{Method: "DELETE", Pattern: "/v1/admin/products/{id}", Summary: "Delete a product", Access: auth.AdminOnly, Handler: s.handleDelete},
	}
}

type productBody struct {
	SKU       string      `json:"sku"`
	Name      string      `json:"name"`
	Price     money.Money `json:"price"`
	Available *int64      `json:"available,omitempty"`
}

func (b productBody) toNew() NewProduct {
	return NewProduct{SKU: b.SKU, Name: b.Name, Price: b.Price, Available: b.Available}
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.List(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"products": ps})
	return nil
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	p, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var b productBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	p, err := s.Create(r.Context(), b.toNew())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, p)
	return nil
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) error {
	var b productBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	b.Available = nil
	p, err := s.Update(r.Context(), r.PathValue("id"), b.toNew())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
