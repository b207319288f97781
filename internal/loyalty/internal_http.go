package loyalty

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// InternalRoutes are the service-to-service endpoints the checkout saga uses
// in split mode (see Client): points holds, purchase earning and refunds.
// Service or admin tokens only.
func (s *Service) InternalRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/loyalty/holds", Summary: "Hold a member's points for a reference (idempotent on reference)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleInternalHold},
		{Method: "POST", Pattern: "/internal/v1/loyalty/holds/{id}/capture", Summary: "Capture (post) a points hold",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleInternalCapture},
		{Method: "POST", Pattern: "/internal/v1/loyalty/holds/{id}/void", Summary: "Void a points hold",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleInternalVoid},
		{Method: "POST", Pattern: "/internal/v1/loyalty/purchases", Summary: "Earn points for a shop purchase (idempotent per order)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleInternalEarnPurchase},
		{Method: "POST", Pattern: "/internal/v1/loyalty/purchases/{order_id}/reversal", Summary: "Take back the points a purchase earned",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleInternalReversePurchase},
		{Method: "POST", Pattern: "/internal/v1/loyalty/point-refunds", Summary: "Give back points spent on a refunded order (idempotent on reference)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleInternalRefundPoints},
	}
}

type internalPointsBody struct {
	MemberID  string `json:"member_id"`
	Points    int64  `json:"points"`
	Reference string `json:"reference"`
}

type internalHoldResult struct {
	HoldID string `json:"hold_id"`
}

func (s *Service) handleInternalHold(w http.ResponseWriter, r *http.Request) error {
	var b internalPointsBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	id, err := s.HoldPoints(r.Context(), b.MemberID, b.Points, b.Reference)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, internalHoldResult{HoldID: id})
	return nil
}

func (s *Service) handleInternalCapture(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.CapturePointsHold(r.Context(), id); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, internalHoldResult{HoldID: id})
	return nil
}

func (s *Service) handleInternalVoid(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.VoidPointsHold(r.Context(), id); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, internalHoldResult{HoldID: id})
	return nil
}

type internalPurchaseBody struct {
	MemberID string      `json:"member_id"`
	OrderID  string      `json:"order_id"`
	Amount   money.Money `json:"amount"`
}

func (s *Service) handleInternalEarnPurchase(w http.ResponseWriter, r *http.Request) error {
	var b internalPurchaseBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	res, err := s.EarnPurchase(r.Context(), b.MemberID, b.OrderID, b.Amount)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

type internalReversalBody struct {
	MemberID string `json:"member_id"`
}

func (s *Service) handleInternalReversePurchase(w http.ResponseWriter, r *http.Request) error {
	var b internalReversalBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.MemberID == "" {
		return errs.Coded(errs.Invalid, "invalid_field", "member_id is required").With("field", "member_id")
	}
	orderID := r.PathValue("order_id")
	if err := s.ReversePurchase(r.Context(), b.MemberID, orderID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"order_id": orderID})
	return nil
}

func (s *Service) handleInternalRefundPoints(w http.ResponseWriter, r *http.Request) error {
	var b internalPointsBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if err := s.RefundPoints(r.Context(), b.MemberID, b.Points, b.Reference); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"reference": b.Reference})
	return nil
}
