package catalog

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// maxBatch bounds the ids of one batch lookup (a cart holds at most 100 products).
const maxBatch = 500

// InternalRoutes are the service-to-service endpoints other services use in
// split mode (see Client): service or admin tokens only.
func (s *Service) InternalRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/products/batch", Summary: "The products (with prices) that exist among ids",
			Access: auth.ServiceOrAdmin, Handler: s.handleBatch},
	}
}

type batchBody struct {
	IDs []string `json:"ids"`
}

type batchResult struct {
	Products map[string]Product `json:"products"`
}

func (s *Service) handleBatch(w http.ResponseWriter, r *http.Request) error {
	var b batchBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if len(b.IDs) > maxBatch {
		return errs.Coded(errs.Invalid, "invalid_field", "at most %d ids per batch", maxBatch).With("field", "ids")
	}
	ps, err := s.Products(r.Context(), b.IDs)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, batchResult{Products: ps})
	return nil
}
