package payment

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the simulator's admin endpoints (fault injection) and the
// simulated bank's authentication answer. They are routed only when the
// simulator is the payment provider.
func (s *Simulator) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/v1/simulator/authenticate", Summary: "Approve or decline a simulated 3-D Secure authentication (the simulated bank page)",
			Access: auth.Public, MaxBody: 4 << 10, Handler: s.handleAuthenticate},
		{Method: "GET", Pattern: "/v1/admin/faults/payment", Summary: "The payment simulator's injected latency and decline rate", Access: auth.AdminOnly, Handler: s.handleGetFaults},
		{Method: "PUT", Pattern: "/v1/admin/faults/payment", Summary: "Set the payment simulator's injected latency and decline rate", Access: auth.AdminOnly, Handler: s.handleSetFaults},
	}
}

func (s *Simulator) handleGetFaults(w http.ResponseWriter, r *http.Request) error {
	f, err := s.Faults(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, f)
	return nil
}

func (s *Simulator) handleSetFaults(w http.ResponseWriter, r *http.Request) error {
	var f Faults
	if err := httpx.Decode(r, &f); err != nil {
		return err
	}
	f, err := s.SetFaults(r.Context(), f)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, f)
	return nil
}

type authenticateBody struct {
	ClientSecret string `json:"client_secret"`
	Approve      *bool  `json:"approve"`
}

type authenticateAnswer struct {
	ChargeID    string `json:"charge_id"`
	Status      string `json:"status"` // succeeded or failed
	DeclineCode string `json:"decline_code,omitempty"`
}

// handleAuthenticate is the simulated bank page's answer. Knowing the client
// secret is the authority, as with Stripe's own confirmation from the browser.
func (s *Simulator) handleAuthenticate(w http.ResponseWriter, r *http.Request) error {
	var b authenticateBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.Approve == nil {
		return errs.Coded(errs.Invalid, "invalid_field", "approve (true or false) is required").With("field", "approve")
	}
	c, err := s.Authenticate(r.Context(), b.ClientSecret, *b.Approve)
	if err != nil {
		return err
	}
	out := authenticateAnswer{ChargeID: c.ID, Status: StatusSucceeded}
	if c.Status != StatusSucceeded {
		out.Status, out.DeclineCode = "failed", c.DeclineCode
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
