package auth

import (
	"slices"

	"github.com/godwit-dev/godwit/internal/errs"
)

// Policy says who may call a route.
type Policy struct {
	// Public routes need no token (a token, if sent, must still be valid).
	Public bool
	// Scopes lists the scopes allowed. A member scope is further limited by MemberParam.
	Scopes []Scope
	// MemberParam names the path parameter holding a member id. When set, a member
	// token is allowed only when its subject equals that parameter.
	MemberParam string
}

// Public lets anyone call.
var Public = Policy{Public: true}

// AdminOnly allows admin tokens.
var AdminOnly = Policy{Scopes: []Scope{ScopeAdmin}}

// ServiceOrAdmin allows trusted systems and admins.
var ServiceOrAdmin = Policy{Scopes: []Scope{ScopeService, ScopeAdmin}}

// AnyToken allows any valid token; the handler scopes the data it returns.
var AnyToken = Policy{Scopes: []Scope{ScopeMember, ScopeService, ScopeAdmin}}

// MemberSelf allows the member named by path parameter param, services and admins.
func MemberSelf(param string) Policy {
	return Policy{Scopes: []Scope{ScopeMember, ScopeService, ScopeAdmin}, MemberParam: param}
}

// Check decides whether p may call a route with this policy; pathValue reads
// path parameters. It returns an errs.Unauthorized or errs.Forbidden error.
func (pol Policy) Check(p *Principal, pathValue func(string) string) error {
	if pol.Public {
		return nil
	}
	if p == nil {
		return errs.Coded(errs.Unauthorized, "unauthenticated", "this endpoint needs a bearer token")
	}
	if !slices.Contains(pol.Scopes, p.Scope) {
		return errs.Coded(errs.Forbidden, "forbidden", "a %s token may not call this endpoint", p.Scope)
	}
	if p.Scope == ScopeMember && pol.MemberParam != "" && pathValue(pol.MemberParam) != p.Subject {
		return errs.Coded(errs.Forbidden, "forbidden", "a member token may only access its own member's data")
	}
	return nil
}
