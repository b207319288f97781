package inventory

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the inventory's HTTP endpoints.
func (s *Service) Routes() []httpx.Route {
	return append([]httpx.Route{
		{Method: "PUT", Pattern: "/v1/admin/inventory/{product_id}", Summary: "Set a product's available stock", Access: auth.AdminOnly, Handler: s.handleSet},
		{Method: "GET", Pattern: "/v1/admin/inventory/{product_id}", Summary: "A product's available stock", Access: auth.AdminOnly, Handler: s.handleGet},
	}, s.faultRoutes()...)
}

var authAdmin = auth.AdminOnly

type stockBody struct {
	Available *int64 `json:"available"`
}

func (s *Service) handleSet(w http.ResponseWriter, r *http.Request) error {
	var b stockBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.Available == nil {
		return errInvalidAvailable
	}
	id := r.PathValue("product_id")
	if err := s.SetAvailable(r.Context(), id, *b.Available); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"product_id": id, "available": *b.Available})
	return nil
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("product_id")
	n, err := s.Available(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"product_id": id, "available": n})
	return nil
}
