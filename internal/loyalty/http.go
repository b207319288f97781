package loyalty

import (
	"net/http"
	"strconv"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the service's HTTP endpoints with their access policies
// and idempotency modes.
func (s *Service) Routes() []httpx.Route {
	return append([]httpx.Route{
		{Method: "POST", Pattern: "/v1/members", Summary: "Enrol a member", Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handleCreateMember},
		{Method: "GET", Pattern: "/v1/members/{id}", Summary: "A member's tier, balance and status points", Access: auth.MemberSelf("id"), Handler: s.handleGetMember},
		{Method: "POST", Pattern: "/v1/members/{id}/activities", Summary: "Post an activity and earn points", Access: auth.ServiceOrAdmin, Idempotency: httpx.IdempotencyOptional, Atomic: true, Handler: s.handlePostActivity},
		{Method: "GET", Pattern: "/v1/members/{id}/statement", Summary: "A member's points movements, newest first", Access: auth.MemberSelf("id"), Handler: s.handleStatement},
		{Method: "GET", Pattern: "/v1/members/{id}/balance", Summary: "A member's ledger balance, now or as of a time", Access: auth.MemberSelf("id"), Handler: s.handleBalance},
		{Method: "GET", Pattern: "/v1/members/{id}/points", Summary: "A member's points by lot: available, pending, held, expiring", Access: auth.MemberSelf("id"), Handler: s.handlePoints},
		{Method: "POST", Pattern: "/v1/admin/promotions", Summary: "Create a promotion", Access: auth.AdminOnly, Idempotency: httpx.IdempotencyOptional, Handler: s.handleCreatePromotion},
		{Method: "GET", Pattern: "/v1/admin/promotions", Summary: "List promotions", Access: auth.AdminOnly, Handler: s.handleListPromotions},
		{Method: "GET", Pattern: "/v1/admin/promotions/{id}", Summary: "Read a promotion", Access: auth.AdminOnly, Handler: s.handleGetPromotion},
		{Method: "PUT", Pattern: "/v1/admin/promotions/{id}", Summary: "Replace a promotion", Access: auth.AdminOnly, Idempotency: httpx.IdempotencyOptional, Handler: s.handleUpdatePromotion},
		{Method: "DELETE", Pattern: "/v1/admin/promotions/{id}", Summary: "Withdraw a promotion", Access: auth.AdminOnly, Handler: s.handleDeletePromotion},
		{Method: "GET", Pattern: "/v1/admin/reports/liability", Summary: "Points liability and breakage over a period, in points and money (JSON or CSV)", Access: auth.AdminOnly, Handler: s.handleLiability},
	}, append(s.spendingAndAdminRoutes(), s.memberAdminRoutes()...)...)
}

// MemberJSON is the API's member shape.
type MemberJSON struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Email        string `json:"email"`
	Tier         string `json:"tier"`
	TierName     string `json:"tier_name"`
	Balance      int64  `json:"balance"`
	Pending      int64  `json:"pending"`
	StatusPoints int64  `json:"status_points"`
	StatusYear   int    `json:"status_year"`
	// PendingPoints are earned points waiting to vest (pending.go), not
	// spendable; Pending above is points reserved by holds.
	PendingPoints  int64             `json:"pending_points"`
	NextTier       *NextTierProgress `json:"next_tier"`
	LastActivityAt *time.Time        `json:"last_activity_at,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	// ErasedAt: the member's personal data was erased (name and email are empty).
	ErasedAt *time.Time `json:"erased_at,omitempty"`
	// WillDowngrade is set (GET /v1/members/{id} only) within the
	// program's notice days of a drop the member is due for.
	WillDowngrade *WillDowngrade `json:"will_downgrade,omitempty"`
}

func (s *Service) memberJSON(m Member) MemberJSON {
	j := MemberJSON{
		ID: m.ID, Name: m.Name, Email: m.Email, Tier: m.Tier, TierName: m.Tier,
		Balance: m.Balance, Pending: m.Pending, StatusPoints: m.StatusPoints, StatusYear: m.StatusYear,
		NextTier: s.NextTier(m), CreatedAt: m.CreatedAt,
	}
	if t, ok := s.prog.Tier(m.Tier); ok {
		j.TierName = t.Name
	}
	if !m.LastActivityAt.IsZero() {
		t := m.LastActivityAt
		j.LastActivityAt = &t
	}
	if !m.ErasedAt.IsZero() {
		t := m.ErasedAt
		j.ErasedAt = &t
	}
	return j
}

type createMemberRequest struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (s *Service) handleCreateMember(w http.ResponseWriter, r *http.Request) error {
	var req createMemberRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	m, err := s.CreateMember(r.Context(), NewMember(req))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/members/"+m.ID)
	httpx.WriteJSON(w, http.StatusCreated, s.memberJSON(m))
	return nil
}

func (s *Service) handleGetMember(w http.ResponseWriter, r *http.Request) error {
	m, err := s.GetMember(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	j := s.memberJSON(m)
	if j.WillDowngrade, err = s.WillDowngrade(r.Context(), m); err != nil {
		return err
	}
	if j.PendingPoints, err = s.PendingPoints(r.Context(), m.ID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, j)
	return nil
}

type flightJSON struct {
	DistanceMiles int64  `json:"distance_miles"`
	FareClass     string `json:"fare_class"`
	Cabin         string `json:"cabin"`
	Origin        string `json:"origin"`
	Destination   string `json:"destination"`
	// Date (YYYY-MM-DD, optional): a future flight's points pend until it.
	Date string `json:"date"`
}

type hotelJSON struct {
	Amount *money.Money `json:"amount"`
	Nights int64        `json:"nights"`
	// CheckOut (YYYY-MM-DD, optional): the points pend until it.
	CheckOut string `json:"check_out"`
}

type cardSpendJSON struct {
	Amount           *money.Money `json:"amount"`
	MerchantCategory string       `json:"merchant_category"`
}

type purchaseJSON struct {
	Amount  *money.Money `json:"amount"`
	OrderID string       `json:"order_id"`
}

type activityRequest struct {
	Type       string         `json:"type"`
	ExternalID string         `json:"external_id"`
	OccurredAt string         `json:"occurred_at"`
	Flight     *flightJSON    `json:"flight"`
	Hotel      *hotelJSON     `json:"hotel"`
	CardSpend  *cardSpendJSON `json:"card_spend"`
	Purchase   *purchaseJSON  `json:"purchase"`
}

// toActivity checks the request's shape: a known type with exactly its own
// details object. The rules about the details are the program's.
func (req activityRequest) toActivity() (Activity, error) {
	if !program.IsActivityType(req.Type) {
		return Activity{}, errs.Coded(errs.Unprocessable, "unknown_activity_type",
			"type %q is not an activity type; use flight, hotel, card_spend or purchase", req.Type).With("field", "type")
	}
	a := Activity{Activity: program.Activity{Type: req.Type}, ExternalID: req.ExternalID}
	if req.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, req.OccurredAt)
		if err != nil {
			return Activity{}, errs.Coded(errs.Unprocessable, "invalid_occurred_at",
				"occurred_at must be an RFC 3339 time such as 2026-03-01T12:00:00Z").With("field", "occurred_at")
		}
		// The zero time is how Activity says "now": sent explicitly it is a
		// placeholder (a source's unset date), not a time, and must not be
		// silently booked as now.
		if t.IsZero() {
			return Activity{}, errs.Coded(errs.Unprocessable, "invalid_occurred_at",
				"occurred_at %s is not a real time; leave occurred_at out to mean now", req.OccurredAt).With("field", "occurred_at")
		}
		a.OccurredAt = t
	}
	present := map[string]bool{
		program.ActivityFlight: req.Flight != nil, program.ActivityHotel: req.Hotel != nil,
		program.ActivityCardSpend: req.CardSpend != nil, program.ActivityPurchase: req.Purchase != nil,
	}
	if !present[req.Type] {
		return Activity{}, errs.Coded(errs.Unprocessable, "missing_details",
			"a %s activity needs a %q object with its details", req.Type, req.Type).With("field", req.Type)
	}
	for _, t := range program.ActivityTypes() {
		if present[t] && t != req.Type {
			return Activity{}, errs.Coded(errs.Unprocessable, "unexpected_details",
				"a %s activity must not carry %q details", req.Type, t).With("field", t)
		}
	}
	missingAmount := func() error {
		return errs.Coded(errs.Unprocessable, "missing_amount", "%s.amount is required", req.Type).With("field", req.Type+".amount")
	}
	var err error
	switch req.Type {
	case program.ActivityFlight:
		f := req.Flight
		a.Flight = &program.Flight{DistanceMiles: f.DistanceMiles, FareClass: f.FareClass, Cabin: f.Cabin, Origin: f.Origin, Destination: f.Destination}
		if a.EventDate, err = eventDate("flight.date", f.Date); err != nil {
			return Activity{}, err
		}
	case program.ActivityHotel:
		if req.Hotel.Amount == nil {
			return Activity{}, missingAmount()
		}
		a.Amount, a.Nights = *req.Hotel.Amount, req.Hotel.Nights
		if a.EventDate, err = eventDate("hotel.check_out", req.Hotel.CheckOut); err != nil {
			return Activity{}, err
		}
	case program.ActivityCardSpend:
		if req.CardSpend.Amount == nil {
			return Activity{}, missingAmount()
		}
		a.Amount, a.MerchantCategory = *req.CardSpend.Amount, req.CardSpend.MerchantCategory
	case program.ActivityPurchase:
		if req.Purchase.Amount == nil {
			return Activity{}, missingAmount()
		}
		a.Amount, a.OrderID = *req.Purchase.Amount, req.Purchase.OrderID
	}
	return a, nil
}

// decodeActivity reads a POST /v1/members/{id}/activities body into an
// Activity of a known type carrying exactly its own details (httpx.Decode,
// then toActivity). It needs no database; Earn checks the rest
// (validateActivity) before it books anything.
func decodeActivity(r *http.Request) (Activity, error) {
	var req activityRequest
	if err := httpx.Decode(r, &req); err != nil {
		return Activity{}, err
	}
	return req.toActivity()
}

func (s *Service) handlePostActivity(w http.ResponseWriter, r *http.Request) error {
	a, err := decodeActivity(r)
	if err != nil {
		return err
	}
	res, err := s.Earn(r.Context(), r.PathValue("id"), a)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, httpx.Created(res.Replayed), res)
	return nil
}

func (s *Service) handleStatement(w http.ResponseWriter, r *http.Request) error {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxStatementLimit {
			return errs.Coded(errs.Invalid, "invalid_limit", "limit must be an integer between 1 and %d", MaxStatementLimit).With("field", "limit")
		}
		limit = n
	}
	types, err := statementTypes(r.URL.Query()["type"])
	if err != nil {
		return err
	}
	var st Statement
	if v := r.URL.Query().Get("as_of"); v != "" {
		var at time.Time
		if at, err = ParseAsOf(v, s.now().UTC()); err != nil {
			return err
		}
		st, err = s.StatementAt(r.Context(), r.PathValue("id"), at, limit, r.URL.Query().Get("cursor"), types...)
	} else {
		st, err = s.Statement(r.Context(), r.PathValue("id"), limit, r.URL.Query().Get("cursor"), types...)
	}
	if err != nil {
		return err
	}
	if r.URL.Query().Get("cursor") == "" && r.URL.Query().Get("as_of") == "" { // the first page of today's statement lists what is pending
		if st.Pending, err = s.pendingLots(r.Context(), s.db.Read(), r.PathValue("id")); err != nil {
			return internal("statement", err)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, st)
	return nil
}

// PromotionJSON is the API's promotion shape.
type PromotionJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	ActivityTypes []string  `json:"activity_types"`
	Tiers         []string  `json:"tiers"`
	MultiplierBP  int64     `json:"multiplier_bp"`
	FixedBonus    int64     `json:"fixed_bonus"`
	CapPoints     int64     `json:"cap_points"`
	CapTimes      int64     `json:"cap_times"`
	// BudgetPoints is the total bonus the promotion may give across all
	// members (0 = no budget); BudgetSpent what it has given; BudgetLeft
	// what it may still give, null without a budget.
	BudgetPoints int64     `json:"budget_points"`
	BudgetSpent  int64     `json:"budget_spent"`
	BudgetLeft   *int64    `json:"budget_left"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func promotionJSON(p Promotion) PromotionJSON {
	j := PromotionJSON{
		ID: p.ID, Name: p.Name, Start: p.Start, End: p.End, ActivityTypes: p.ActivityTypes, Tiers: p.Tiers,
		MultiplierBP: p.MultiplierBP, FixedBonus: p.FixedBonus, CapPoints: p.CapPoints, CapTimes: p.CapTimes,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		BudgetPoints: p.BudgetPoints, BudgetSpent: p.BudgetSpent,
	}
	if p.BudgetPoints > 0 {
		left := max(p.BudgetPoints-p.BudgetSpent, 0) // a budget lowered below what was spent has none left
		j.BudgetLeft = &left
	}
	if j.ActivityTypes == nil {
		j.ActivityTypes = []string{}
	}
	if j.Tiers == nil {
		j.Tiers = []string{}
	}
	return j
}

type promotionRequest struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Start         string   `json:"start"`
	End           string   `json:"end"`
	ActivityTypes []string `json:"activity_types"`
	Tiers         []string `json:"tiers"`
	MultiplierBP  int64    `json:"multiplier_bp"`
	FixedBonus    int64    `json:"fixed_bonus"`
	CapPoints     int64    `json:"cap_points"`
	CapTimes      int64    `json:"cap_times"`
	BudgetPoints  int64    `json:"budget_points"`
}

func (req promotionRequest) toPromotion() (program.Promotion, error) {
	pr := program.Promotion{
		ID: req.ID, Name: req.Name, ActivityTypes: req.ActivityTypes, Tiers: req.Tiers,
		MultiplierBP: req.MultiplierBP, FixedBonus: req.FixedBonus, CapPoints: req.CapPoints, CapTimes: req.CapTimes,
		BudgetPoints: req.BudgetPoints,
	}
	for _, f := range []struct {
		name string
		in   string
		out  *time.Time
	}{{"start", req.Start, &pr.Start}, {"end", req.End, &pr.End}} {
		if f.in == "" {
			continue // the program's validation names the missing field
		}
		t, err := time.Parse(time.RFC3339Nano, f.in)
		if err != nil {
			return program.Promotion{}, errs.Coded(errs.Unprocessable, "invalid_promotion",
				"promotion: %s: must be an RFC 3339 time such as 2026-03-01T00:00:00Z", f.name).With("field", f.name)
		}
		*f.out = t
	}
	return pr, nil
}

func (s *Service) handleCreatePromotion(w http.ResponseWriter, r *http.Request) error {
	var req promotionRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	pr, err := req.toPromotion()
	if err != nil {
		return err
	}
	p, err := s.CreatePromotion(r.Context(), pr)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/promotions/"+p.ID)
	httpx.WriteJSON(w, http.StatusCreated, promotionJSON(p))
	return nil
}

func (s *Service) handleListPromotions(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.ListPromotions(r.Context())
	if err != nil {
		return err
	}
	out := make([]PromotionJSON, len(ps))
	for i, p := range ps {
		out[i] = promotionJSON(p)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"promotions": out})
	return nil
}

func (s *Service) handleGetPromotion(w http.ResponseWriter, r *http.Request) error {
	p, err := s.GetPromotion(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, promotionJSON(p))
	return nil
}

func (s *Service) handleUpdatePromotion(w http.ResponseWriter, r *http.Request) error {
	var req promotionRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if req.ID != "" && req.ID != id {
		return errs.Coded(errs.Unprocessable, "invalid_promotion", "the body's id %q differs from the path's %q", req.ID, id).With("field", "id")
	}
	req.ID = id
	pr, err := req.toPromotion()
	if err != nil {
		return err
	}
	p, err := s.UpdatePromotion(r.Context(), pr)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, promotionJSON(p))
	return nil
}

func (s *Service) handleDeletePromotion(w http.ResponseWriter, r *http.Request) error {
	if err := s.DeletePromotion(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
