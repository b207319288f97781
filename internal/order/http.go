package order

import (
	"net/http"
	"strconv"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the order endpoints. (POST /v1/orders/{id}/refund is served by
// the checkout package, which holds the payment and loyalty clients.)
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/orders/{id}", Summary: "One order (its member, or admin/service)", Access: auth.AnyToken, Handler: s.handleGet},
		{Method: "GET", Pattern: "/v1/members/{id}/orders", Summary: "A member's orders, newest first", Access: auth.MemberSelf("id"), Handler: s.handleList},
	}
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	o, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if p := auth.FromContext(r.Context()); p.Scope == auth.ScopeMember && (o.MemberID == "" || p.Subject != o.MemberID) {
		// Not the owner: answer as if it did not exist, so ids cannot be probed.
		return notFound(o.ID)
	}
	httpx.WriteJSON(w, http.StatusOK, o)
	return nil
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) error {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return errs.Coded(errs.Invalid, "invalid_field", "limit must be 1-200").With("field", "limit")
		}
		limit = n
	}
	os, err := s.ListByMember(r.Context(), r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"orders": os})
	return nil
}
