package checkout

import (
	"encoding/json"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// maxCheckoutBody bounds POST /v1/checkout.
const maxCheckoutBody = 16 << 10

// Routes returns the checkout endpoints and the order refund.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "POST", Pattern: "/v1/checkout", Summary: "Check out a cart: reserve, charge, create the order", Access: auth.Public,
			Idempotency: httpx.IdempotencyRequired, MaxBody: maxCheckoutBody, GuestScope: cartScope, Handler: s.handleCheckout},
		{Method: "POST", Pattern: "/v1/checkout/{id}/confirm", Summary: "Complete a checkout that waited for 3-D Secure authentication",
			Access: auth.Public, MaxBody: 4 << 10, Handler: s.handleConfirm},
		{Method: "GET", Pattern: "/v1/checkout/{id}", Summary: "A checkout's state, for its owner (member token, or Godwit-Client-Secret)",
			Access: auth.Public, Handler: s.handleView},
		{Method: "POST", Pattern: "/v1/orders/{id}/refund", Summary: "Refund an order (all or part): payment, redeemed points, earned points",
			Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyRequired, Handler: s.handleRefund},
		{Method: "POST", Pattern: "/v1/orders/{id}/fulfil", Summary: "Fulfil an authorized order (manual capture): capture what ships, restock and credit what is cancelled, earn points",
			Access: auth.ServiceOrAdmin, MaxBody: 16 << 10, Handler: s.handleFulfil},
		{Method: "GET", Pattern: "/v1/admin/checkouts/{id}", Summary: "A checkout's recorded saga state", Access: auth.AdminOnly, Handler: s.handleGet},
		{Method: "POST", Pattern: "/v1/admin/checkouts/recover", Summary: "Run a checkout recovery pass now", Access: auth.AdminOnly, Handler: s.handleRecover},
	}
}

type checkoutBody struct {
	CartID  string `json:"cart_id"`
	Payment struct {
		Token string `json:"token"`
	} `json:"payment"`
	PointsToRedeem int64  `json:"points_to_redeem"`
	Email          string `json:"email"`
}

// cartScope scopes a guest's Idempotency-Key to the cart it checks out, so
// two guests who send the same key for their own carts never collide. A body
// that does not parse scopes nothing (the key is then scoped to the whole
// request); the handler rejects it anyway.
func cartScope(_ *http.Request, body []byte) string {
	var b struct {
		CartID string `json:"cart_id"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.CartID
}

func rejectEarly(err *errs.Error) error { return err.With("failure_step", StepInitiated) }

// decodeCheckout reads a POST /v1/checkout request into the Request the saga
// runs: the body decoded and checked (validateBody) for the caller — a member
// token or no token — and the checkout's id from the Idempotency-Key and its
// owner. It needs no database. Every refusal carries failure_step
// "initiated" (rejectEarly).
func decodeCheckout(r *http.Request) (Request, error) {
	// Decode refuses card numbers (422 httpx.CodeCardDataRejected) in every
	// decoded string and number — \u escapes resolved — before anything of the
	// body is used, logged or stored; the answer names the step like every
	// refusal here.
	var b checkoutBody
	if err := httpx.Decode(r, &b); err != nil {
		if e, ok := errs.As(err); ok {
			return Request{}, rejectEarly(e)
		}
		return Request{}, err
	}
	p := auth.FromContext(r.Context())
	memberID := ""
	if p != nil {
		if p.Scope != auth.ScopeMember {
			return Request{}, rejectEarly(errs.Coded(errs.Forbidden, "forbidden", "checkout is for members (member token) and guests (no token)"))
		}
		memberID = p.Subject
	}
	if err := validateBody(&b, memberID); err != nil {
		return Request{}, rejectEarly(err)
	}
	key := r.Header.Get("Idempotency-Key")
	return Request{
		CheckoutID: ID(httpx.IdempotencyOwner(r.Context()), key), CartID: b.CartID, MemberID: memberID, Email: b.Email,
		PaymentToken: b.Payment.Token, PointsToRedeem: b.PointsToRedeem,
	}, nil
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeCheckout(r)
	if err != nil {
		return err
	}
	res, err := s.Checkout(r.Context(), req)
	if err != nil {
		return err
	}
	writeResult(w, res)
	return nil
}

// pendingRetryAfter is the Retry-After of a 202: the client comes back after
// the customer authenticated, not by polling fast. The header also keeps the
// 202 from becoming its Idempotency-Key's final answer.
const pendingRetryAfter = "5"

// pendingBody is the 202 of a checkout waiting for authentication.
type pendingBody struct {
	Status       string          `json:"status"`
	CheckoutID   string          `json:"checkout_id"`
	ClientSecret string          `json:"client_secret"`
	NextAction   json.RawMessage `json:"next_action"`
	ExpiresAt    time.Time       `json:"expires_at"`
}

// writeResult answers a checkout: 201 with the order, or 202 while the
// customer must authenticate.
func writeResult(w http.ResponseWriter, res Result) {
	if res.Action == nil {
		httpx.WriteJSON(w, http.StatusCreated, res)
		return
	}
	na := res.Action.NextAction
	if len(na) == 0 {
		na = json.RawMessage("null")
	}
	w.Header().Set("Retry-After", pendingRetryAfter)
	httpx.WriteJSON(w, http.StatusAccepted, pendingBody{Status: res.Status, CheckoutID: res.CheckoutID, ClientSecret: res.Action.ClientSecret,
		NextAction: na, ExpiresAt: res.Action.ExpiresAt})
}

// owner is who calls a checkout's own routes: a member token, or no token
// with the client secret (in the body or the Godwit-Client-Secret header).
func owner(r *http.Request, secret string) (Owner, error) {
	o := Owner{ClientSecret: secret}
	if p := auth.FromContext(r.Context()); p != nil {
		if p.Scope != auth.ScopeMember {
			return Owner{}, errs.Coded(errs.Forbidden, "forbidden", "a checkout is for its member (member token) or its guest (client secret)")
		}
		o.MemberID = p.Subject
	}
	if o.MemberID == "" && o.ClientSecret == "" {
		return Owner{}, errs.Coded(errs.Invalid, "invalid_field", "client_secret is required without a member token").With("field", "client_secret")
	}
	return o, nil
}

type confirmBody struct {
	ClientSecret string `json:"client_secret"`
}

func (s *Service) handleConfirm(w http.ResponseWriter, r *http.Request) error {
	var b confirmBody
	if r.ContentLength != 0 {
		if err := httpx.Decode(r, &b); err != nil {
			return err
		}
	}
	o, err := owner(r, b.ClientSecret)
	if err != nil {
		return err
	}
	res, err := s.Confirm(r.Context(), r.PathValue("id"), o)
	if err != nil {
		return err
	}
	writeResult(w, res)
	return nil
}

func (s *Service) handleView(w http.ResponseWriter, r *http.Request) error {
	o, err := owner(r, r.Header.Get("Godwit-Client-Secret"))
	if err != nil {
		return err
	}
	v, err := s.View(r.Context(), r.PathValue("id"), o)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

func validateBody(b *checkoutBody, memberID string) *errs.Error {
	if b.CartID == "" || len(b.CartID) > 100 {
		return errs.Coded(errs.Invalid, "invalid_field", "cart_id is required").With("field", "cart_id")
	}
	if err := payment.ValidateToken(b.Payment.Token); err != nil {
		e, _ := errs.As(err)
		return e
	}
	if b.PointsToRedeem < 0 {
		return errs.Coded(errs.Invalid, "invalid_field", "points_to_redeem must not be negative").With("field", "points_to_redeem")
	}
	if b.PointsToRedeem > 0 && memberID == "" {
		return errs.Coded(errs.Unprocessable, "points_unavailable", "only members can pay with points").With("field", "points_to_redeem")
	}
	b.Email = strings.TrimSpace(b.Email)
	if b.Email == "" {
		if memberID == "" {
			return errs.Coded(errs.Invalid, "invalid_field", "guests must give an email address for the confirmation").With("field", "email")
		}
		return nil
	}
	a, err := mail.ParseAddress(b.Email)
	if err != nil || a.Name != "" || len(b.Email) > 254 || !strings.Contains(a.Address, "@") || !plainAddress(a.Address) {
		// The address is not echoed: it is personal data.
		return errs.Coded(errs.Invalid, "invalid_field", "email must be a plain email address").With("field", "email")
	}
	b.Email = a.Address
	return nil
}

// plainAddress reports whether addr, an address as net/mail returns it, is
// itself a plain address that parses back to itself. net/mail unquotes a
// quoted local part, so "a b"@example.com comes back as a b@example.com,
// which no mail system accepts; needless quotes ("g"@example.com) are fine.
func plainAddress(addr string) bool {
	a, err := mail.ParseAddress(addr)
	return err == nil && a.Name == "" && a.Address == addr
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) error {
	st, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, st)
	return nil
}

func (s *Service) handleRecover(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.Recover(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "recovery pass had errors", "error", err.Error())
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
	return nil
}
