package webhooks

import (
	"net/http"
	"strconv"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the subscription management endpoints (admin only).
func (s *Service) Routes() []httpx.Route {
	const base = "/v1/admin/webhook-subscriptions"
	return []httpx.Route{
		{Method: "POST", Pattern: base, Summary: "Subscribe a URL to event types; answers the signing secret once", Access: auth.AdminOnly, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCreate},
		{Method: "GET", Pattern: base, Summary: "List webhook subscriptions", Access: auth.AdminOnly, Handler: s.handleList},
		{Method: "GET", Pattern: base + "/{id}", Summary: "One webhook subscription", Access: auth.AdminOnly, Handler: s.handleGet},
		{Method: "PATCH", Pattern: base + "/{id}", Summary: "Change a subscription's URL, event types or description, or pause or resume it", Access: auth.AdminOnly, Handler: s.handleUpdate},
		{Method: "DELETE", Pattern: base + "/{id}", Summary: "Delete a webhook subscription", Access: auth.AdminOnly, Handler: s.handleDelete},
		{Method: "GET", Pattern: base + "/{id}/deliveries", Summary: "A subscription's delivery log, newest first", Access: auth.AdminOnly, Handler: s.handleDeliveries},
		{Method: "POST", Pattern: base + "/{id}/replay", Summary: "Deliver one event, or a time range of events, again", Access: auth.AdminOnly, Idempotency: httpx.IdempotencyOptional, Handler: s.handleReplay},
	}
}

type createBody struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
}

// created is the answer to a create: the subscription and its secret.
type created struct {
	Subscription
	Secret string `json:"secret"`
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var b createBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	sub, secret, err := s.Create(r.Context(), NewSubscription{URL: b.URL, EventTypes: b.EventTypes, Description: b.Description})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, created{Subscription: sub, Secret: secret})
	return nil
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) error {
	subs, err := s.List(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"subscriptions": subs})
	return nil
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	sub, err := s.Get(r.Context(), r.PathValue("id"))
	return httpx.Reply(w, http.StatusOK, sub, err)
}

type patchBody struct {
	URL         *string  `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description *string  `json:"description"`
	State       *string  `json:"state"`
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) error {
	var b patchBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	sub, err := s.Update(r.Context(), r.PathValue("id"), Patch{URL: b.URL, EventTypes: b.EventTypes, Description: b.Description, State: b.State})
	return httpx.Reply(w, http.StatusOK, sub, err)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) handleDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return errs.Coded(errs.Invalid, "invalid_limit", "limit must be 1 to 500").With("field", "limit")
		}
		limit = n
	}
	state := q.Get("state")
	switch state {
	case "", DeliveryPending, DeliveryDelivered, DeliveryDead, DeliveryCancelled:
	default:
		return errs.Coded(errs.Invalid, "invalid_query", "state must be pending, delivered, dead or cancelled").With("field", "state")
	}
	ds, err := s.Deliveries(r.Context(), r.PathValue("id"), state, limit)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	return nil
}

type replayBody struct {
	EventID string     `json:"event_id"`
	From    *time.Time `json:"from"`
	To      *time.Time `json:"to"`
}

func (s *Service) handleReplay(w http.ResponseWriter, r *http.Request) error {
	var b replayBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	req := ReplayRequest{EventID: b.EventID}
	if b.From != nil {
		req.From = *b.From
	}
	if b.To != nil {
		req.To = *b.To
	}
	n, err := s.Replay(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"queued": n})
	return nil
}
