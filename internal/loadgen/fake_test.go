package loadgen_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tokens the fake server accepts.
const (
	adminToken   = "admin-token"
	serviceToken = "service-token"
)

func memberTokenFor(id string) (string, error) { return "member:" + id, nil }

// fakeBehaviour configures the fake server's answers. It is fixed before the
// server starts.
type fakeBehaviour struct {
	transferStatus int           // answer every transfer with this 5xx (0: succeed)
	rejectRedeemN  int64         // every Nth redemption is 422 insufficient_points (0: never)
	stockOutN      int64         // every Nth checkout (that is not declined) is 409 insufficient_stock
	browsePlain503 bool          // GET /v1/products during the load answers a plain-text 503
	browseDelay    time.Duration // each GET /v1/products during the load sleeps this long
	stall          *stall        // stalls GET /v1/products during the load
	products       int           // catalogue size (default 4)
	skipBrowse     int64         // browse calls exempt from the faults above (discovery)
	trackStock     bool          // checkouts take their lines from the stock set by PUT /v1/admin/inventory; short is 409 insufficient_stock
}

// stall blocks every browse request from the after-th on until hold has passed
// since the after-th arrived.
type stall struct {
	after int64
	hold  time.Duration

	n        atomic.Int64
	released chan struct{}
	once     sync.Once
	mu       sync.Mutex
	began    time.Time
	ended    time.Time
}

func newStall(after int64, hold time.Duration) *stall {
	return &stall{after: after, hold: hold, released: make(chan struct{})}
}

func (s *stall) enter() {
	n := s.n.Add(1)
	if n == s.after {
		s.mu.Lock()
		s.began = time.Now()
		s.mu.Unlock()
		time.AfterFunc(s.hold, s.release)
	}
	if n >= s.after {
		<-s.released
	}
}

// release ends the stall (once).
func (s *stall) release() {
	s.once.Do(func() {
		s.mu.Lock()
		s.ended = time.Now()
		s.mu.Unlock()
		close(s.released)
	})
}

func (s *stall) window() (began, ended time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.began, s.ended
}

// fake is a minimal Godwit API: enough of each endpoint for the load
// generator, with counters and a record of every header rule broken.
type fake struct {
	t   *testing.T
	srv *httptest.Server
	b   fakeBehaviour

	browseCalls atomic.Int64
	inFlight    atomic.Int64
	maxIn       atomic.Int64

	mu          sync.Mutex
	violations  []string
	idemKeys    map[string]string // key → pattern
	hits        map[string]int    // by route pattern
	auth        map[string]map[string]int
	members     map[string]bool
	memberOrder []string
	activities  map[string]int // member → credited activities
	activityTy  map[string]int // activity type → count
	inventory   map[string]int64
	carts       map[string]string // cart → member ("" for guests)
	payTokens   map[string]int
	pointsUsed  int
	guestEmails int
	redeems     int64
	rejected    map[string]int // code → answers given
	transfers   []map[string]any
	checkouts   int64
	redeemedBy  map[string]int        // member in the path → redemptions
	sentBy      map[string]int        // member in the path → transfers
	cartLines   map[string][]cartLine // cart → items added
	stockSet    map[string]int64      // product → the last stock set by the admin API
	adjusted    map[string][]int64    // member → adjustments
}

type cartLine struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

var valueMoving = map[string]bool{
	"POST /v1/checkout":                       true,
	"POST /v1/members/{id}/activities":        true,
	"POST /v1/members/{id}/redemptions":       true,
	"POST /v1/members/{id}/transfers":         true,
	"POST /v1/admin/members/{id}/adjustments": true,
}

func newFake(t *testing.T, b fakeBehaviour) *fake {
	t.Helper()
	if b.products == 0 {
		b.products = 4
	}
	f := &fake{
		t: t, b: b,
		idemKeys: map[string]string{}, hits: map[string]int{}, auth: map[string]map[string]int{},
		members: map[string]bool{}, activities: map[string]int{}, activityTy: map[string]int{},
		inventory: map[string]int64{}, carts: map[string]string{}, payTokens: map[string]int{},
		rejected: map[string]int{}, redeemedBy: map[string]int{}, sentBy: map[string]int{},
		cartLines: map[string][]cartLine{}, stockSet: map[string]int64{}, adjusted: map[string][]int64{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/products", f.products)
	mux.HandleFunc("PUT /v1/admin/inventory/{product_id}", f.setInventory)
	mux.HandleFunc("POST /v1/members", f.createMember)
	mux.HandleFunc("POST /v1/members/{id}/activities", f.activity)
	mux.HandleFunc("POST /v1/admin/members/{id}/adjustments", f.adjust)
	mux.HandleFunc("GET /v1/redemption-options", f.options)
	mux.HandleFunc("POST /v1/members/{id}/redemptions", f.redeem)
	mux.HandleFunc("POST /v1/members/{id}/transfers", f.transfer)
	mux.HandleFunc("POST /v1/carts", f.createCart)
	mux.HandleFunc("POST /v1/carts/{id}/items", f.addItem)
	mux.HandleFunc("POST /v1/checkout", f.checkout)
	f.srv = httptest.NewServer(f.check(mux))
	t.Cleanup(f.srv.Close)
	if b.stall != nil {
		t.Cleanup(b.stall.release) // runs first: Close waits for stalled handlers
	}
	return f
}

// check records every request's route, token and header-rule violations.
func (f *fake) check(next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.inFlight.Add(1)
		defer f.inFlight.Add(-1)
		for {
			m := f.maxIn.Load()
			if n <= m || f.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		_, pattern := next.Handler(r)
		f.mu.Lock()
		f.hits[pattern]++
		if f.auth[pattern] == nil {
			f.auth[pattern] = map[string]int{}
		}
		f.auth[pattern][strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]++
		if !strings.Contains(r.Header.Get("Baggage"), "synthetic=true") {
			f.violations = append(f.violations, pattern+": no synthetic baggage")
		}
		if !strings.HasPrefix(r.Header.Get("User-Agent"), "godwit-loadgen/") {
			f.violations = append(f.violations, pattern+": user agent "+r.Header.Get("User-Agent"))
		}
		if valueMoving[pattern] {
			key := r.Header.Get("Idempotency-Key")
			switch {
			case key == "":
				f.violations = append(f.violations, pattern+": no Idempotency-Key")
			case f.idemKeys[key] != "":
				f.violations = append(f.violations, pattern+": Idempotency-Key reused "+key)
			default:
				f.idemKeys[key] = pattern
			}
		}
		f.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:godwit:problem:" + code, "status": status, "code": code, "title": http.StatusText(status)})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, 400, "invalid_json")
		return false
	}
	return true
}

func (f *fake) token(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func (f *fake) products(w http.ResponseWriter, r *http.Request) {
	// The first skipBrowse calls are the load generator's discovery (made
	// when checkout is in the mix or setup runs); faults apply to the load.
	if f.browseCalls.Add(1) > f.b.skipBrowse {
		if f.b.stall != nil {
			f.b.stall.enter()
		}
		if f.b.browseDelay > 0 {
			time.Sleep(f.b.browseDelay)
		}
		if f.b.browsePlain503 {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(503)
			_, _ = w.Write([]byte("upstream unavailable"))
			return
		}
	}
	ps := make([]map[string]any, f.b.products)
	for i := range ps {
		ps[i] = map[string]any{"id": fmt.Sprintf("p%d", i), "sku": fmt.Sprintf("SKU-%d", i), "name": "Thing", "price": map[string]any{"amount": 1000 + 500*i, "currency": "USD"}, "available": 5}
	}
	writeJSON(w, 200, map[string]any{"products": ps})
}

func (f *fake) setInventory(w http.ResponseWriter, r *http.Request) {
	if f.token(r) != adminToken {
		problem(w, 403, "forbidden")
		return
	}
	var b struct {
		Available int64 `json:"available"`
	}
	if !decode(w, r, &b) {
		return
	}
	f.mu.Lock()
	f.inventory[r.PathValue("product_id")] = b.Available
	f.stockSet[r.PathValue("product_id")] = b.Available
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"product_id": r.PathValue("product_id"), "available": b.Available})
}

func (f *fake) createMember(w http.ResponseWriter, r *http.Request) {
	if f.token(r) != adminToken {
		problem(w, 403, "forbidden")
		return
	}
	var b struct {
		ID, Name, Email string
	}
	if !decode(w, r, &b) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.members[b.ID] {
		problem(w, 409, "member_exists")
		return
	}
	f.members[b.ID] = true
	f.memberOrder = append(f.memberOrder, b.ID)
	writeJSON(w, 201, map[string]any{"id": b.ID, "tier": "blue", "balance": 0})
}

func (f *fake) activity(w http.ResponseWriter, r *http.Request) {
	if tok := f.token(r); tok != serviceToken && tok != adminToken {
		problem(w, 401, "unauthenticated")
		return
	}
	var b struct {
		Type       string          `json:"type"`
		ExternalID string          `json:"external_id"`
		OccurredAt time.Time       `json:"occurred_at"`
		Flight     json.RawMessage `json:"flight"`
		Hotel      json.RawMessage `json:"hotel"`
		CardSpend  json.RawMessage `json:"card_spend"`
	}
	if !decode(w, r, &b) {
		return
	}
	if b.ExternalID == "" || b.OccurredAt.IsZero() {
		problem(w, 400, "invalid_field")
		return
	}
	f.mu.Lock()
	f.activities[r.PathValue("id")]++
	f.activityTy[b.Type]++
	f.mu.Unlock()
	writeJSON(w, 201, map[string]any{"transaction_id": "tx", "total_points_earned": 100, "new_balance": 100})
}

func (f *fake) adjust(w http.ResponseWriter, r *http.Request) {
	if f.token(r) != adminToken {
		problem(w, 403, "forbidden")
		return
	}
	var b struct {
		Points int64  `json:"points"`
		Reason string `json:"reason"`
	}
	if !decode(w, r, &b) {
		return
	}
	if b.Points == 0 || b.Reason == "" {
		problem(w, 422, "invalid_points")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if !f.members[id] {
		problem(w, 404, "member_not_found")
		return
	}
	f.adjusted[id] = append(f.adjusted[id], b.Points)
	writeJSON(w, 201, map[string]any{"transaction_id": "adj", "points": b.Points})
}

func (f *fake) options(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"options": []map[string]any{
		{"id": "merch-mug", "type": "merchandise", "name": "Mug", "points": 2500},
		{"id": "award-long", "type": "award_flight", "name": "Far", "points": 70000},
		{"id": "merch-tag", "type": "merchandise", "name": "Tag", "points": 1500},
	}})
}

func (f *fake) redeem(w http.ResponseWriter, r *http.Request) {
	var b struct {
		OptionID string `json:"option_id"`
	}
	if !decode(w, r, &b) {
		return
	}
	f.mu.Lock()
	f.redeems++
	f.redeemedBy[r.PathValue("id")]++
	reject := f.b.rejectRedeemN > 0 && f.redeems%f.b.rejectRedeemN == 0
	if reject {
		f.rejected["insufficient_points"]++
	}
	f.mu.Unlock()
	if reject {
		problem(w, 422, "insufficient_points")
		return
	}
	writeJSON(w, 201, map[string]any{"status": "success", "points_deducted": 1500, "new_balance": 1})
}

func (f *fake) transfer(w http.ResponseWriter, r *http.Request) {
	var b map[string]any
	if !decode(w, r, &b) {
		return
	}
	f.mu.Lock()
	f.transfers = append(f.transfers, b)
	f.sentBy[r.PathValue("id")]++
	f.mu.Unlock()
	if f.b.transferStatus != 0 {
		problem(w, f.b.transferStatus, "internal")
		return
	}
	writeJSON(w, 201, map[string]any{"new_balance": 1})
}

func (f *fake) createCart(w http.ResponseWriter, r *http.Request) {
	member := ""
	if tok := f.token(r); strings.HasPrefix(tok, "member:") {
		member = strings.TrimPrefix(tok, "member:")
	}
	f.mu.Lock()
	id := fmt.Sprintf("cart-%d", len(f.carts))
	f.carts[id] = member
	f.mu.Unlock()
	writeJSON(w, 201, map[string]any{"id": id, "items": []any{}})
}

func (f *fake) addItem(w http.ResponseWriter, r *http.Request) {
	var b cartLine
	if !decode(w, r, &b) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	owner, ok := f.carts[r.PathValue("id")]
	if !ok {
		problem(w, 404, "cart_not_found")
		return
	}
	if owner != "" && f.token(r) != "member:"+owner {
		problem(w, 403, "forbidden")
		return
	}
	f.cartLines[r.PathValue("id")] = append(f.cartLines[r.PathValue("id")], b)
	writeJSON(w, 200, map[string]any{"id": r.PathValue("id")})
}

func (f *fake) checkout(w http.ResponseWriter, r *http.Request) {
	var b struct {
		CartID  string `json:"cart_id"`
		Payment struct {
			Token string `json:"token"`
		} `json:"payment"`
		PointsToRedeem int64  `json:"points_to_redeem"`
		Email          string `json:"email"`
	}
	if !decode(w, r, &b) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	owner, ok := f.carts[b.CartID]
	if !ok {
		problem(w, 404, "cart_not_found")
		return
	}
	if (owner == "") == (b.Email == "") {
		problem(w, 400, "email_for_guests_only")
		return
	}
	f.payTokens[b.Payment.Token]++
	if b.PointsToRedeem > 0 {
		f.pointsUsed++
	}
	if b.Email != "" {
		f.guestEmails++
	}
	if b.Payment.Token != "tok_visa" {
		f.rejected["payment_declined"]++
		problem(w, 402, "payment_declined")
		return
	}
	f.checkouts++
	if (f.b.stockOutN > 0 && f.checkouts%f.b.stockOutN == 0) || (f.b.trackStock && !f.take(f.cartLines[b.CartID])) {
		f.rejected["insufficient_stock"]++
		problem(w, 409, "insufficient_stock")
		return
	}
	writeJSON(w, 201, map[string]any{"order_id": "o", "status": "confirmed"})
}

// take removes a cart's lines from stock if all of them are available. The
// caller holds f.mu.
func (f *fake) take(lines []cartLine) bool {
	for _, l := range lines {
		if f.inventory[l.ProductID] < l.Quantity {
			return false
		}
	}
	for _, l := range lines {
		f.inventory[l.ProductID] -= l.Quantity
	}
	return true
}

// snapshot runs fn with the fake's state locked.
func (f *fake) snapshot(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
