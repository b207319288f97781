package payment

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the simulator's admin endpoints (fault injection).
func (s *Simulator) Routes() []httpx.Route {
	return []httpx.Route{
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
