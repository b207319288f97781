package loyalty

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// memberAdminRoutes are the admin's member operations of issue 21: merging
// a duplicate member. (Erasing a member's personal data reaches beyond
// loyalty's tables; package app serves it.)
func (s *Service) memberAdminRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/v1/admin/members/{id}/merge", Summary: "Merge a duplicate member into another: points, lots and status move; the duplicate answers 410 from then on",
			Access: auth.AdminOnly, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleMerge},
	}
}

type mergeRequest struct {
	Into   string `json:"into"`
	Reason string `json:"reason"`
}

func (s *Service) handleMerge(w http.ResponseWriter, r *http.Request) error {
	var req mergeRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	res, err := s.MergeMember(r.Context(), r.PathValue("id"), req.Into, req.Reason)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}
