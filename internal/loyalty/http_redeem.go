package loyalty

import (
	"net/http"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// spendingAndAdminRoutes are the endpoints that spend, move and correct points
// (redemption, transfers, partner credits, expiry, reversals, adjustments)
// and the simulated providers' fault settings.
func (s *Service) spendingAndAdminRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/redemption-options", Summary: "The redemption catalogue (with a member token: each option's cost for that member)", Access: auth.Public, Handler: s.handleRedemptionOptions},
		{Method: "POST", Pattern: "/v1/members/{id}/redemptions", Summary: "Redeem points for a catalogue option", Access: auth.MemberSelf("id"), Idempotency: httpx.IdempotencyOptional, Handler: s.handleRedeem},
		{Method: "POST", Pattern: "/v1/members/{id}/transfers", Summary: "Transfer points to a partner program or another member", Access: auth.MemberSelf("id"), Idempotency: httpx.IdempotencyOptional, Handler: s.handleTransfer},
		{Method: "POST", Pattern: "/v1/members/{id}/partner-credits", Summary: "Credit points a partner sends in for a member", Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handlePartnerCredit},
		{Method: "POST", Pattern: "/v1/admin/expirations", Summary: "Run the points expiry job now", Access: auth.AdminOnly, Handler: s.handleExpire},
		{Method: "POST", Pattern: "/v1/admin/transactions/{id}/reversal", Summary: "Reverse an earning transaction", Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleReverse},
		{Method: "POST", Pattern: "/v1/admin/members/{id}/adjustments", Summary: "Adjust a member's points by hand, with a reason", Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleAdjust},
		{Method: "GET", Pattern: "/v1/admin/faults/fulfillment", Summary: "The fulfilment provider's fault setting", Access: auth.AdminOnly, Handler: s.handleGetFulfillmentFault},
		{Method: "PUT", Pattern: "/v1/admin/faults/fulfillment", Summary: "Make the fulfilment provider fail or slow down", Access: auth.AdminOnly, Handler: s.handlePutFulfillmentFault},
		{Method: "GET", Pattern: "/v1/admin/faults/partners/{id}", Summary: "A partner simulator's fault setting", Access: auth.AdminOnly, Handler: s.handleGetPartnerFault},
		{Method: "PUT", Pattern: "/v1/admin/faults/partners/{id}", Summary: "Make a partner simulator reject or slow down", Access: auth.AdminOnly, Handler: s.handlePutPartnerFault},
	}
}

// CostJSON is an option's price for one member.
type CostJSON struct {
	Points     int64 `json:"points"`
	DiscountBP int64 `json:"discount_bp"`
	Discount   int64 `json:"discount"`
	Final      int64 `json:"final"`
}

// RedemptionOptionJSON is the API's catalogue entry.
type RedemptionOptionJSON struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Name   string    `json:"name"`
	Points int64     `json:"points"`
	Zone   string    `json:"zone,omitempty"`
	Cabin  string    `json:"cabin,omitempty"`
	SKU    string    `json:"sku,omitempty"`
	Cost   *CostJSON `json:"member_cost,omitempty"`
}

func (s *Service) handleRedemptionOptions(w http.ResponseWriter, r *http.Request) error {
	opts := s.prog.Options()
	out := make([]RedemptionOptionJSON, len(opts))
	for i, o := range opts {
		out[i] = RedemptionOptionJSON{ID: o.ID, Type: o.Type, Name: o.Name, Points: o.Points, Zone: o.Zone, Cabin: o.Cabin, SKU: o.SKU}
	}
	if p := auth.FromContext(r.Context()); p != nil && p.Scope == auth.ScopeMember {
		costs, err := s.MemberOptionCosts(r.Context(), p.Subject)
		if err != nil && errs.KindOf(err) != errs.NotFound {
			return err
		}
		for i, c := range costs {
			out[i].Cost = &CostJSON{Points: c.Cost.Points, DiscountBP: c.Cost.DiscountBP, Discount: c.Cost.Discount, Final: c.Cost.Final}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"options": out})
	return nil
}

// idempotencyReference turns the request's Idempotency-Key into the
// service's reference: scoped by the caller, like the HTTP mechanism.
func idempotencyReference(r *http.Request) string {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return ""
	}
	return auth.FromContext(r.Context()).Actor() + ":" + k
}

type redeemRequest struct {
	OptionID string `json:"option_id"`
}

// decodeRedemption reads a POST /v1/members/{id}/redemptions request: the
// option it names (required) and the call's reference (idempotencyReference).
// It needs no database; Redeem checks both (checkRedemption) before it holds
// any points.
func decodeRedemption(r *http.Request) (optionID, reference string, err error) {
	var req redeemRequest
	if err := httpx.Decode(r, &req); err != nil {
		return "", "", err
	}
	if req.OptionID == "" {
		return "", "", errs.Coded(errs.Unprocessable, "missing_option_id", "option_id is required").With("field", "option_id")
	}
	return req.OptionID, idempotencyReference(r), nil
}

func (s *Service) handleRedeem(w http.ResponseWriter, r *http.Request) error {
	optionID, reference, err := decodeRedemption(r)
	if err != nil {
		return err
	}
	res, err := s.Redeem(r.Context(), r.PathValue("id"), optionID, reference)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, httpx.Created(res.Replayed), res)
	return nil
}

type transferRequest struct {
	PartnerID  string `json:"partner_id"`
	ToMemberID string `json:"to_member_id"`
	Points     *int64 `json:"points"`
}

// decodeTransfer reads a POST /v1/members/{id}/transfers request into a
// TransferRequest (points required, the reference from idempotencyReference).
// It needs no database; Transfer checks the request (checkTransfer) before
// it moves any points.
func decodeTransfer(r *http.Request) (TransferRequest, error) {
	var req transferRequest
	if err := httpx.Decode(r, &req); err != nil {
		return TransferRequest{}, err
	}
	if req.Points == nil {
		return TransferRequest{}, errs.Coded(errs.Unprocessable, "invalid_points", "points is required").With("field", "points")
	}
	return TransferRequest{PartnerID: req.PartnerID, ToMemberID: req.ToMemberID, Points: *req.Points, Reference: idempotencyReference(r)}, nil
}

func (s *Service) handleTransfer(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTransfer(r)
	if err != nil {
		return err
	}
	res, err := s.Transfer(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, httpx.Created(res.Replayed), res)
	return nil
}

type partnerCreditRequest struct {
	PartnerID  string `json:"partner_id"`
	ExternalID string `json:"external_id"`
	Points     int64  `json:"points"`
}

func (s *Service) handlePartnerCredit(w http.ResponseWriter, r *http.Request) error {
	var req partnerCreditRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	res, err := s.PartnerCredit(r.Context(), r.PathValue("id"), req.PartnerID, req.ExternalID, req.Points)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, httpx.Created(res.Replayed), res)
	return nil
}

// ExpireJSON is the response of POST /v1/admin/expirations.
type ExpireJSON struct {
	Policy             string    `json:"policy"`
	AsOf               time.Time `json:"as_of"`
	MembersExamined    int       `json:"members_examined"`
	AccountsAffected   int       `json:"accounts_affected"`
	TotalPointsExpired int64     `json:"total_points_expired"`
}

func (s *Service) handleExpire(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > 0 {
		var empty struct{}
		if err := httpx.Decode(r, &empty); err != nil {
			return err
		}
	}
	rep, err := s.ExpireBatch(r.Context(), ExpireOptions{})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, ExpireJSON{
		Policy: rep.Policy, AsOf: rep.Now, MembersExamined: rep.Candidates,
		AccountsAffected: rep.AccountsAffected, TotalPointsExpired: rep.TotalPointsExpired,
	})
	return nil
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Service) handleReverse(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	res, err := s.ReverseTransaction(r.Context(), r.PathValue("id"), req.Reason)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, httpx.Created(res.Replayed), res)
	return nil
}

type adjustRequest struct {
	Points      int64      `json:"points"`
	Reason      string     `json:"reason"`
	EffectiveAt *time.Time `json:"effective_at"`
}

func (s *Service) handleAdjust(w http.ResponseWriter, r *http.Request) error {
	var req adjustRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	var effective time.Time
	if req.EffectiveAt != nil {
		effective = *req.EffectiveAt
	}
	res, err := s.AdjustAt(r.Context(), r.PathValue("id"), req.Points, req.Reason, effective)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, res)
	return nil
}

// FaultJSON is a fault setting as the API shows it.
type FaultJSON struct {
	Target    string     `json:"target"`
	Fail      bool       `json:"fail"`
	DelayMS   int64      `json:"delay_ms"`
	Source    string     `json:"source"`
	UpdatedBy string     `json:"updated_by,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func faultJSON(target string, f Fault) FaultJSON {
	j := FaultJSON{Target: target, Fail: f.Fail, DelayMS: f.DelayMS, Source: f.Source, UpdatedBy: f.UpdatedBy}
	if !f.UpdatedAt.IsZero() {
		t := f.UpdatedAt
		j.UpdatedAt = &t
	}
	return j
}

type faultRequest struct {
	Fail    *bool  `json:"fail"`
	DelayMS *int64 `json:"delay_ms"`
}

func (req faultRequest) values() (bool, int64, error) {
	if req.Fail == nil {
		return false, 0, errs.Coded(errs.Unprocessable, "missing_fail", "fail is required (true or false)").With("field", "fail")
	}
	var d int64
	if req.DelayMS != nil {
		d = *req.DelayMS
	}
	return *req.Fail, d, nil
}

func (s *Service) handleGetFulfillmentFault(w http.ResponseWriter, r *http.Request) error {
	f, err := s.FulfillmentFault(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, faultJSON(faultFulfillment, f))
	return nil
}

func (s *Service) handlePutFulfillmentFault(w http.ResponseWriter, r *http.Request) error {
	var req faultRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	fail, delay, err := req.values()
	if err != nil {
		return err
	}
	f, err := s.SetFulfillmentFault(r.Context(), fail, delay)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, faultJSON(faultFulfillment, f))
	return nil
}

func (s *Service) handleGetPartnerFault(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	f, err := s.PartnerFault(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, faultJSON(faultPartner(id), f))
	return nil
}

func (s *Service) handlePutPartnerFault(w http.ResponseWriter, r *http.Request) error {
	var req faultRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	fail, delay, err := req.values()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	f, err := s.SetPartnerFault(r.Context(), id, fail, delay)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, faultJSON(faultPartner(id), f))
	return nil
}
