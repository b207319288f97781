package inventory

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// InternalRoutes are the service-to-service endpoints the checkout saga uses
// in split mode (see Client). They are not public API: service or admin tokens only.
func (s *Service) InternalRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/inventory/reservations", Summary: "Reserve stock for a reference (all items or none; idempotent on reference)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleReserve},
		{Method: "POST", Pattern: "/internal/v1/inventory/reservations/{id}/commit", Summary: "Commit a held reservation",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCommit},
		{Method: "POST", Pattern: "/internal/v1/inventory/reservations/{id}/release", Summary: "Release a held reservation's stock",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleRelease},
		{Method: "GET", Pattern: "/internal/v1/inventory/reservations/by-reference/{ref}", Summary: "The reservation made under a reference",
			Access: auth.ServiceOrAdmin, Handler: s.handleByReference},
	}
}

type reserveBody struct {
	Reference string `json:"reference"`
	Items     []Item `json:"items"`
}

func (s *Service) handleReserve(w http.ResponseWriter, r *http.Request) error {
	var b reserveBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.Reference == "" {
		return errInvalidReference
	}
	res, err := s.Reserve(r.Context(), b.Reference, b.Items)
	return httpx.Reply(w, http.StatusOK, res, err)
}

func (s *Service) handleCommit(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.Commit(r.Context(), id); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"reservation_id": id, "state": StateCommitted})
	return nil
}

type releaseResult struct {
	ReservationID string `json:"reservation_id"`
	Released      bool   `json:"released"`
}

func (s *Service) handleRelease(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	released, err := s.Release(r.Context(), id)
	return httpx.Reply(w, http.StatusOK, releaseResult{ReservationID: id, Released: released}, err)
}

func (s *Service) handleByReference(w http.ResponseWriter, r *http.Request) error {
	res, err := s.ReservationByReference(r.Context(), r.PathValue("ref"))
	return httpx.Reply(w, http.StatusOK, res, err)
}
