package payment

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// InternalRoutes are the service-to-service endpoints the checkout saga uses
// in split mode (see Client): service or admin tokens only. The token in a
// charge request is never logged or traced.
func (s *Service) InternalRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/payments/charges", Summary: "Charge a payment token (idempotent on idempotency_key)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCharge},
		{Method: "GET", Pattern: "/internal/v1/payments/charges/by-key/{key}", Summary: "The charge made under an idempotency key",
			Access: auth.ServiceOrAdmin, Handler: s.handleLookup},
		{Method: "GET", Pattern: "/internal/v1/payments/charges/{id}", Summary: "A charge's current state at the provider",
			Access: auth.ServiceOrAdmin, Handler: s.handleRetrieve},
		{Method: "POST", Pattern: "/internal/v1/payments/charges/{id}/cancel", Summary: "Cancel a charge that has not moved money",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCancel},
		{Method: "POST", Pattern: "/internal/v1/payments/charges/{id}/void", Summary: "Void a charge",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleVoid},
		{Method: "POST", Pattern: "/internal/v1/payments/charges/{id}/refunds", Summary: "Refund (part of) a charge (idempotent on key)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleRefund},
	}
}

// chargeJSON is a Charge on the internal wire, idempotency key included.
type chargeJSON struct {
	ID             string      `json:"id"`
	IdempotencyKey string      `json:"idempotency_key"`
	Amount         money.Money `json:"amount"`
	Status         string      `json:"status"`
	DeclineCode    string      `json:"decline_code,omitempty"`
	Refunded       money.Money `json:"refunded"`
	CreatedAt      time.Time   `json:"created_at"`
	// ClientSecret and NextAction of a requires_action charge travel to the
	// checkout service (service tokens only).
	ClientSecret string          `json:"client_secret,omitempty"`
	NextAction   json.RawMessage `json:"next_action,omitempty"`
}

func toChargeJSON(c Charge) chargeJSON {
	return chargeJSON{ID: c.ID, IdempotencyKey: c.IdempotencyKey, Amount: c.Amount, Status: c.Status, DeclineCode: c.DeclineCode,
		Refunded: c.Refunded, CreatedAt: c.CreatedAt, ClientSecret: c.ClientSecret, NextAction: c.NextAction}
}

func (j chargeJSON) toCharge() Charge {
	return Charge{ID: j.ID, IdempotencyKey: j.IdempotencyKey, Amount: j.Amount, Status: j.Status, DeclineCode: j.DeclineCode,
		Refunded: j.Refunded, CreatedAt: j.CreatedAt, ClientSecret: j.ClientSecret, NextAction: j.NextAction}
}

type chargeBody struct {
	IdempotencyKey string      `json:"idempotency_key"`
	Amount         money.Money `json:"amount"`
	Token          string      `json:"token"`
	Description    string      `json:"description,omitempty"`
	OrderID        string      `json:"order_id,omitempty"`
}

func (s *Service) handleCharge(w http.ResponseWriter, r *http.Request) error {
	var b chargeBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.IdempotencyKey == "" {
		return errs.Coded(errs.Invalid, "invalid_field", "idempotency_key is required").With("field", "idempotency_key")
	}
	ch, err := s.Charge(r.Context(), ChargeRequest{IdempotencyKey: b.IdempotencyKey, Amount: b.Amount, Token: b.Token, Description: b.Description, OrderID: b.OrderID})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, toChargeJSON(ch))
	return nil
}

func (s *Service) handleLookup(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.Lookup(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, toChargeJSON(ch))
	return nil
}

func (s *Service) handleRetrieve(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.Retrieve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, toChargeJSON(ch))
	return nil
}

func (s *Service) handleCancel(w http.ResponseWriter, r *http.Request) error {
	if err := s.Cancel(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) handleVoid(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.Void(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, toChargeJSON(ch))
	return nil
}

type refundBody struct {
	Amount money.Money `json:"amount"`
	Key    string      `json:"key"`
}

func (s *Service) handleRefund(w http.ResponseWriter, r *http.Request) error {
	var b refundBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.Key == "" {
		return errs.Coded(errs.Invalid, "invalid_field", "key is required").With("field", "key")
	}
	rf, err := s.Refund(r.Context(), r.PathValue("id"), b.Amount, b.Key)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, rf)
	return nil
}
