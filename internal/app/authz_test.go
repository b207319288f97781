package app_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// The callers every route is tried with.
type caller int

const (
	noToken      caller = iota
	badSignature        // an admin token signed with another secret
	expiredToken        // an admin token that expired an hour ago
	otherMember         // a member token for m-other
	selfMember          // a member token for m-self
	serviceToken
	adminToken
	numCallers
)

var callerNames = [numCallers]string{"no token", "bad signature", "expired token", "other member", "member self", "service", "admin"}

// outcome is what a caller must get.
type outcome int

const (
	allowed   outcome = iota // anything but 401 and 403 (the handler may still say 400/404/422)
	deny401                  // 401 Unauthorized
	deny403                  // 403 Forbidden
	hidden404                // 404: the handler hides another member's resource
)

func (o outcome) accepts(status int) bool {
	switch o {
	case deny401:
		return status == 401
	case deny403:
		return status == 403
	case hidden404:
		return status == 404
	}
	return status != 401 && status != 403 && status < 500
}

func (o outcome) String() string {
	return [...]string{"allowed (not 401/403, not 5xx)", "401", "403", "404"}[o]
}

// expectation lists the outcome for each caller, in caller order.
type expectation [numCallers]outcome

// The route policies, spelled out per caller. A token that is sent must be
// valid even on a public route.
var (
	//                    none     bad      expired  other    self     service  admin
	public     = expectation{allowed, deny401, deny401, allowed, allowed, allowed, allowed}
	adminOnly  = expectation{deny401, deny401, deny401, deny403, deny403, deny403, allowed}
	svcOrAdmin = expectation{deny401, deny401, deny401, deny403, deny403, allowed, allowed}
	memberSelf = expectation{deny401, deny401, deny401, deny403, allowed, allowed, allowed}
	anyToken   = expectation{deny401, deny401, deny401, allowed, allowed, allowed, allowed}
	// Internal (split-mode) routes: services call them; admins may too.
	internal = svcOrAdmin
	// A member's cart (public route; the handler checks the owner).
	memberCart = expectation{deny401, deny401, deny401, deny403, allowed, allowed, allowed}
	// A member's order (any token; another member is told it does not exist).
	memberOrder = expectation{deny401, deny401, deny401, hidden404, allowed, allowed, allowed}
	// Checkout is for members and guests only.
	checkoutCallers = expectation{allowed, deny401, deny401, allowed, allowed, deny403, deny403}
)

// authzTable is the expected access to every route, keyed "METHOD pattern".
// A route missing here fails TestAuthorisationMatrix: decide who may call a new
// route and add it.
var authzTable = map[string]expectation{
	// app
	"GET /v1/admin/traces":                                adminOnly,
	"POST /v1/webhooks/stripe":                            public, // the Stripe-Signature authenticates it
	"POST /v1/admin/webhook-subscriptions":                adminOnly,
	"GET /v1/admin/webhook-subscriptions":                 adminOnly,
	"GET /v1/admin/webhook-subscriptions/{id}":            adminOnly,
	"PATCH /v1/admin/webhook-subscriptions/{id}":          adminOnly,
	"DELETE /v1/admin/webhook-subscriptions/{id}":         adminOnly,
	"GET /v1/admin/webhook-subscriptions/{id}/deliveries": adminOnly,
	"POST /v1/admin/webhook-subscriptions/{id}/replay":    adminOnly,
	"GET /v1/admin/faults":                                adminOnly,
	"GET /v1/admin/faults/{point}":                        adminOnly,
	"PUT /v1/admin/faults/{point}":                        adminOnly,
	"GET /v1/admin/traces/{trace_id}":                     adminOnly,
	"GET /v1/openapi.yaml":                                public,
	"GET /v1/admin/verify":                                adminOnly,
	"POST /v1/admin/tokens/revocations":                   adminOnly,
	"DELETE /v1/admin/members/{id}/personal-data":         adminOnly,

	// loyalty
	"POST /v1/members":                                        svcOrAdmin,
	"GET /v1/members/{id}":                                    memberSelf,
	"POST /v1/members/{id}/activities":                        svcOrAdmin,
	"GET /v1/members/{id}/statement":                          memberSelf,
	"GET /v1/members/{id}/balance":                            memberSelf,
	"GET /v1/admin/reports/liability":                         adminOnly,
	"GET /v1/members/{id}/points":                             memberSelf,
	"POST /v1/admin/promotions":                               adminOnly,
	"GET /v1/admin/promotions":                                adminOnly,
	"GET /v1/admin/promotions/{id}":                           adminOnly,
	"PUT /v1/admin/promotions/{id}":                           adminOnly,
	"DELETE /v1/admin/promotions/{id}":                        adminOnly,
	"GET /v1/redemption-options":                              public,
	"POST /v1/members/{id}/redemptions":                       memberSelf,
	"POST /v1/members/{id}/transfers":                         memberSelf,
	"POST /v1/members/{id}/partner-credits":                   svcOrAdmin,
	"POST /v1/admin/expirations":                              adminOnly,
	"POST /v1/admin/transactions/{id}/reversal":               svcOrAdmin,
	"POST /v1/admin/members/{id}/adjustments":                 svcOrAdmin,
	"POST /v1/admin/members/{id}/merge":                       adminOnly,
	"GET /v1/admin/faults/fulfillment":                        adminOnly,
	"PUT /v1/admin/faults/fulfillment":                        adminOnly,
	"GET /v1/admin/faults/partners/{id}":                      adminOnly,
	"PUT /v1/admin/faults/partners/{id}":                      adminOnly,
	"POST /internal/v1/loyalty/holds":                         internal,
	"POST /internal/v1/loyalty/holds/{id}/capture":            internal,
	"POST /internal/v1/loyalty/holds/{id}/void":               internal,
	"POST /internal/v1/loyalty/purchases":                     internal,
	"POST /internal/v1/loyalty/purchases/{order_id}/reversal": internal,
	"POST /internal/v1/loyalty/point-refunds":                 internal,

	// catalog and inventory
	"GET /v1/products":                                           public,
	"GET /v1/products/{id}":                                      public,
	"POST /v1/admin/products":                                    adminOnly,
	"PUT /v1/admin/products/{id}":                                adminOnly,
	"DELETE /v1/admin/products/{id}":                             adminOnly,
	"POST /internal/v1/products/batch":                           internal,
	"PUT /v1/admin/inventory/{product_id}":                       adminOnly,
	"GET /v1/admin/inventory/{product_id}":                       adminOnly,
	"GET /v1/admin/faults/inventory":                             adminOnly,
	"PUT /v1/admin/faults/inventory":                             adminOnly,
	"POST /internal/v1/inventory/reservations":                   internal,
	"POST /internal/v1/inventory/reservations/{id}/commit":       internal,
	"POST /internal/v1/inventory/reservations/{id}/release":      internal,
	"GET /internal/v1/inventory/reservations/by-reference/{ref}": internal,

	// cart
	"POST /v1/carts":                           public,
	"GET /v1/carts/{id}":                       memberCart,
	"POST /v1/carts/{id}/items":                memberCart,
	"PUT /v1/carts/{id}/items/{product_id}":    memberCart,
	"DELETE /v1/carts/{id}/items/{product_id}": memberCart,
	"POST /internal/v1/carts/{id}/validate":    internal,
	"POST /internal/v1/carts/{id}/release":     internal,

	// payment
	"GET /v1/admin/faults/payment":                    adminOnly,
	"PUT /v1/admin/faults/payment":                    adminOnly,
	"POST /internal/v1/payments/charges":              internal,
	"GET /internal/v1/payments/charges/by-key/{key}":  internal,
	"POST /internal/v1/payments/charges/{id}/void":    internal,
	"GET /internal/v1/payments/charges/{id}":          internal,
	"POST /internal/v1/payments/charges/{id}/cancel":  internal,
	"POST /v1/simulator/authenticate":                 public,
	"POST /internal/v1/payments/charges/{id}/refunds": internal,

	// order
	"GET /v1/orders/{id}":                                      memberOrder,
	"GET /v1/members/{id}/orders":                              memberSelf,
	"POST /internal/v1/orders":                                 internal,
	"GET /internal/v1/orders/{id}":                             internal,
	"GET /internal/v1/orders/by-checkout/{checkout_id}":        internal,
	"POST /internal/v1/orders/{id}/confirm":                    internal,
	"POST /internal/v1/orders/{id}/refunds":                    internal,
	"POST /internal/v1/orders/{id}/refunds/{refund_id}/finish": internal,

	// checkout
	"POST /v1/checkout":                checkoutCallers,
	"POST /v1/checkout/{id}/confirm":   checkoutCallers,
	"GET /v1/checkout/{id}":            checkoutCallers,
	"POST /v1/orders/{id}/refund":      svcOrAdmin,
	"POST /v1/orders/{id}/fulfil":      svcOrAdmin,
	"GET /v1/admin/checkouts/{id}":     adminOnly,
	"POST /v1/admin/checkouts/recover": adminOnly,
}

// authzBody is the request body sent to a route: a valid one where a handler
// checks its input before the caller's ownership, an empty object elsewhere.
func authzBody(key string, w *world) map[string]any {
	switch key {
	case "POST /v1/carts/{id}/items":
		return map[string]any{"product_id": w.productID, "quantity": 1}
	case "PUT /v1/carts/{id}/items/{product_id}":
		return map[string]any{"quantity": 1}
	}
	return map[string]any{}
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// fillPath puts ids that exist into a route pattern where the answer depends
// on them (a member's own data, their cart and order), and a dummy elsewhere.
func fillPath(pattern string, w *world) string {
	switch {
	case strings.HasPrefix(pattern, "/v1/members/{id}"):
		return strings.Replace(pattern, "{id}", w.self, 1)
	case strings.HasPrefix(pattern, "/v1/carts/{id}"):
		pattern = strings.Replace(pattern, "{id}", w.cartID, 1)
		return strings.Replace(pattern, "{product_id}", w.productID, 1)
	case strings.HasPrefix(pattern, "/v1/orders/{id}"):
		return strings.Replace(pattern, "{id}", w.orderID, 1)
	case strings.HasPrefix(pattern, "/v1/admin/members/{id}"):
		return strings.Replace(pattern, "{id}", w.self, 1)
	}
	return pathParam.ReplaceAllString(pattern, "authz-$1")
}

// TestAuthorisationMatrix tries every route of the route table with every kind
// of caller and checks the status against authzTable.
func TestAuthorisationMatrix(t *testing.T) {
	// A signing secret, so the Stripe webhook answers 400 (unsigned) rather than 503.
	r := newRig(t, rigOptions{cfg: app.Config{Demo: true, StripeWebhook: app.StripeWebhookConfig{Secrets: []string{"whsec_authz_matrix"}}}})
	w := seedWorld(r)

	foreign, err := auth.NewKeys([]byte("another-secret-another-secret-xx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := foreign.Mint(auth.ScopeAdmin, "rig-admin", time.Hour)
	past, err := auth.NewKeys([]byte(rigSecret), func() time.Time { return time.Now().Add(-2 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := past.Mint(auth.ScopeAdmin, "rig-admin", time.Hour)
	tokens := [numCallers]string{"", forged, expired, w.otherToken, w.selfToken, w.serviceToken, w.adminToken}

	routes := r.a.API.Routes()
	seen := map[string]bool{}
	tried := 0
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		seen[key] = true
		exp, ok := authzTable[key]
		if !ok {
			t.Errorf("route %s has no authorisation expectation: add it to authzTable", key)
			continue
		}
		path := fillPath(rt.Pattern, w)
		for c := range numCallers {
			var body any
			hdr := map[string]string{}
			if rt.Method != "GET" {
				body = authzBody(key, w)
				hdr["Idempotency-Key"] = nextKey("authz")
			}
			status, problem := r.call(rt.Method, path, tokens[c], body, hdr)
			tried++
			if !exp[c].accepts(status) {
				t.Errorf("%s as %s (%s): got %d %v, want %s", key, callerNames[c], path, status, problem["code"], exp[c])
			}
			if status == 401 || status == 403 {
				// A refusal names itself: no handler ran, nothing was echoed.
				if code, _ := problem["code"].(string); code == "" {
					t.Errorf("%s as %s: %d without a problem code", key, callerNames[c], status)
				}
			}
		}
	}
	var stale []string
	for key := range authzTable {
		if !seen[key] {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	for _, key := range stale {
		t.Errorf("authzTable has %s, which is not a route any more: remove it", key)
	}
	t.Logf("%d routes × %d callers: %d requests", len(routes), numCallers, tried)
	requireVerified(t, r.a, time.Hour)
}

// TestAuthorisationTableMatchesPolicies cross-checks the explicit table against
// the policies the routes declare, so the two cannot drift apart silently. The
// routes whose handlers refine their policy are listed here by name.
func TestAuthorisationTableMatchesPolicies(t *testing.T) {
	refined := map[string]bool{
		"GET /v1/carts/{id}": true, "POST /v1/carts/{id}/items": true,
		"PUT /v1/carts/{id}/items/{product_id}": true, "DELETE /v1/carts/{id}/items/{product_id}": true,
		"GET /v1/orders/{id}": true, "POST /v1/checkout": true,
		"POST /v1/checkout/{id}/confirm": true, "GET /v1/checkout/{id}": true,
	}
	r := newRig(t, rigOptions{})
	for _, rt := range r.a.API.Routes() {
		key := rt.Method + " " + rt.Pattern
		exp, ok := authzTable[key]
		if !ok || refined[key] {
			continue // TestAuthorisationMatrix reports missing entries
		}
		var fromPolicy expectation
		switch {
		case rt.Access.Public:
			fromPolicy = public
		case fmt.Sprint(rt.Access.Scopes) == fmt.Sprint(auth.AdminOnly.Scopes):
			fromPolicy = adminOnly
		case fmt.Sprint(rt.Access.Scopes) == fmt.Sprint(auth.ServiceOrAdmin.Scopes):
			fromPolicy = svcOrAdmin
		case rt.Access.MemberParam != "":
			fromPolicy = memberSelf
		default:
			fromPolicy = anyToken
		}
		if fromPolicy != exp {
			t.Errorf("%s: the table says %v, the route's policy implies %v", key, exp, fromPolicy)
		}
	}
}
