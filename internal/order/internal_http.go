package order

import (
	"net/http"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// InternalRoutes are the service-to-service endpoints the checkout saga uses
// in split mode (see Client): service or admin tokens only.
func (s *Service) InternalRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/internal/v1/orders", Summary: "Create a checkout's order with its confirmation (idempotent on checkout_id)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCreate},
		{Method: "GET", Pattern: "/internal/v1/orders/{id}", Summary: "An order, with its charge id",
			Access: auth.ServiceOrAdmin, Handler: s.handleInternalGet},
		{Method: "GET", Pattern: "/internal/v1/orders/by-checkout/{checkout_id}", Summary: "The order a checkout created",
			Access: auth.ServiceOrAdmin, Handler: s.handleByCheckout},
		{Method: "POST", Pattern: "/internal/v1/orders/{id}/confirm", Summary: "Confirm a paid order with the points it earned",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleConfirm},
		{Method: "POST", Pattern: "/internal/v1/orders/{id}/refunds", Summary: "Start (record) a refund of an order (idempotent on refund_id)",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleStartRefund},
		{Method: "POST", Pattern: "/internal/v1/orders/{id}/refunds/{refund_id}/finish", Summary: "Finish a recorded refund",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Handler: s.handleFinishRefund},
	}
}

// orderJSON is an Order on the internal wire: the public shape plus the charge id.
type orderJSON struct {
	ID             string      `json:"id"`
	CheckoutID     string      `json:"checkout_id"`
	MemberID       string      `json:"member_id,omitempty"`
	Status         Status      `json:"status"`
	Items          []Item      `json:"items"`
	Total          money.Money `json:"total"`
	PointsRedeemed int64       `json:"points_redeemed"`
	PointsAmount   money.Money `json:"points_amount"`
	Charged        money.Money `json:"charged"`
	ChargeID       string      `json:"charge_id"`
	PointsEarned   int64       `json:"points_earned"`
	Refunded       money.Money `json:"refunded"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
}

func toOrderJSON(o Order) orderJSON {
	return orderJSON{ID: o.ID, CheckoutID: o.CheckoutID, MemberID: o.MemberID, Status: o.Status, Items: o.Items, Total: o.Total,
		PointsRedeemed: o.PointsRedeemed, PointsAmount: o.PointsAmount, Charged: o.Charged, ChargeID: o.ChargeID,
		PointsEarned: o.PointsEarned, Refunded: o.Refunded, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

func (j orderJSON) toOrder() Order {
	return Order{ID: j.ID, CheckoutID: j.CheckoutID, MemberID: j.MemberID, Status: j.Status, Items: j.Items, Total: j.Total,
		PointsRedeemed: j.PointsRedeemed, PointsAmount: j.PointsAmount, Charged: j.Charged, ChargeID: j.ChargeID,
		PointsEarned: j.PointsEarned, Refunded: j.Refunded, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
}

type messageJSON struct {
	Kind    string `json:"kind"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

type createBody struct {
	ID             string       `json:"id,omitempty"`
	CheckoutID     string       `json:"checkout_id"`
	MemberID       string       `json:"member_id,omitempty"`
	Items          []Item       `json:"items"`
	Total          money.Money  `json:"total"`
	PointsRedeemed int64        `json:"points_redeemed"`
	PointsAmount   money.Money  `json:"points_amount"`
	Charged        money.Money  `json:"charged"`
	ChargeID       string       `json:"charge_id,omitempty"`
	Confirmation   *messageJSON `json:"confirmation,omitempty"`
}

func toCreateBody(no NewOrder) createBody {
	b := createBody{ID: no.ID, CheckoutID: no.CheckoutID, MemberID: no.MemberID, Items: no.Items, Total: no.Total, PointsRedeemed: no.PointsRedeemed,
		PointsAmount: no.PointsAmount, Charged: no.Charged, ChargeID: no.ChargeID}
	if m := no.Confirmation; m != nil {
		b.Confirmation = &messageJSON{Kind: m.Kind, To: m.To, Subject: m.Subject, Body: m.Body}
	}
	return b
}

func (b createBody) toNewOrder() NewOrder {
	no := NewOrder{ID: b.ID, CheckoutID: b.CheckoutID, MemberID: b.MemberID, Items: b.Items, Total: b.Total, PointsRedeemed: b.PointsRedeemed,
		PointsAmount: b.PointsAmount, Charged: b.Charged, ChargeID: b.ChargeID}
	if m := b.Confirmation; m != nil {
		no.Confirmation = &notify.Message{Kind: m.Kind, To: m.To, Subject: m.Subject, Body: m.Body}
	}
	return no
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var b createBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	// The fault points' delays, applied here for a saga in another process
	// (in one process the saga waits them out itself: WaitFault).
	if err := s.WaitFault(r.Context(), FaultPointCreate); err != nil {
		return err
	}
	o, err := s.Create(r.Context(), b.toNewOrder())
	if err == nil {
		err = s.WaitFault(r.Context(), FaultPointCreated)
	}
	return httpx.Reply(w, http.StatusOK, toOrderJSON(o), err)
}

func (s *Service) handleInternalGet(w http.ResponseWriter, r *http.Request) error {
	o, err := s.Get(r.Context(), r.PathValue("id"))
	return httpx.Reply(w, http.StatusOK, toOrderJSON(o), err)
}

func (s *Service) handleByCheckout(w http.ResponseWriter, r *http.Request) error {
	o, err := s.ByCheckout(r.Context(), r.PathValue("checkout_id"))
	return httpx.Reply(w, http.StatusOK, toOrderJSON(o), err)
}

type confirmBody struct {
	PointsEarned int64 `json:"points_earned"`
}

func (s *Service) handleConfirm(w http.ResponseWriter, r *http.Request) error {
	var b confirmBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	o, err := s.Confirm(r.Context(), r.PathValue("id"), b.PointsEarned)
	return httpx.Reply(w, http.StatusOK, toOrderJSON(o), err)
}

type startRefundBody struct {
	RefundID string       `json:"refund_id"`
	Amount   *money.Money `json:"amount,omitempty"`
}

type refundPlanJSON struct {
	ID     string      `json:"id"`
	Order  orderJSON   `json:"order"`
	Amount money.Money `json:"amount"`
	Full   bool        `json:"full"`
	Done   bool        `json:"done"`
}

func (s *Service) handleStartRefund(w http.ResponseWriter, r *http.Request) error {
	var b startRefundBody
	if err := httpx.Decode(r, &b); err != nil {
		return err
	}
	if b.RefundID == "" {
		return errs.Coded(errs.Invalid, "invalid_field", "refund_id is required").With("field", "refund_id")
	}
	p, err := s.StartRefund(r.Context(), r.PathValue("id"), b.RefundID, b.Amount)
	return httpx.Reply(w, http.StatusOK, refundPlanJSON{ID: p.ID, Order: toOrderJSON(p.Order), Amount: p.Amount, Full: p.Full, Done: p.Done}, err)
}

func (s *Service) handleFinishRefund(w http.ResponseWriter, r *http.Request) error {
	o, err := s.FinishRefund(r.Context(), r.PathValue("id"), r.PathValue("refund_id"))
	return httpx.Reply(w, http.StatusOK, toOrderJSON(o), err)
}
