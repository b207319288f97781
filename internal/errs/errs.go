// Package errs is Godwit's one error type: a kind that decides the HTTP status,
// a stable machine-readable code that clients switch on, and details that become
// problem+json extension members. Domain packages return *Error; the HTTP edge
// (internal/platform/httpx) maps kinds to status codes in one table.
//
// Codes: a code that another package or process compares against (errs.Is)
// is an exported constant named Code<What> in the package that returns it,
// beside the code that returns it: order.CodeOrderNotFound,
// inventory.CodeReservationNotFound, payment.CodeChargeNotFound,
// auth.CodeTokenExpired, httpx.CodeIdempotencyKeyInProgress. The layering
// allows this everywhere: whoever compares a code calls the package that
// returns it (in split mode through that package's Client, which returns the
// same codes), so it imports that package already. errs itself holds no
// codes. A code only ever read by HTTP clients may stay a literal where it is
// returned; the problem documents in the OpenAPI description are its contract.
package errs

import (
	"errors"
	"fmt"
)

// Kind is the broad class of a failure. Each kind maps to exactly one HTTP status.
type Kind string

// The kinds. Add one only together with its row in httpx's status table.
const (
	Invalid         Kind = "invalid"          // malformed or semantically wrong input (400)
	Unauthorized    Kind = "unauthorized"     // missing or bad credentials (401)
	PaymentRequired Kind = "payment_required" // the payment was declined (402)
	Forbidden       Kind = "forbidden"        // authenticated but not allowed (403)
	NotFound        Kind = "not_found"        // the resource does not exist (404)
	Conflict        Kind = "conflict"         // state conflict, e.g. stock or price changed (409)
	Gone            Kind = "gone"             // the resource existed and is no more, e.g. a merged member (410)
	TooLarge        Kind = "too_large"        // request body over the limit (413)
	Unsupported     Kind = "unsupported"      // unsupported media type (415)
	Unprocessable   Kind = "unprocessable"    // well-formed but violates a business rule (422)
	TooMany         Kind = "too_many"         // rate limited (429)
	Internal        Kind = "internal"         // a bug or an unexpected failure (500)
	BadGateway      Kind = "bad_gateway"      // an upstream provider failed (502)
	Unavailable     Kind = "unavailable"      // a dependency is down; retry later (503)
	Timeout         Kind = "timeout"          // an upstream call timed out (504)
	// ClientClosed: the client went away before the answer was ready (499,
	// nginx's convention). Nobody reads the answer; it is not a server failure.
	ClientClosed Kind = "client_closed"
)

// Error is a failure with a kind, a stable code and a message safe to show a client.
// Err, when set, is the underlying cause: it is logged but never sent to clients.
type Error struct {
	Kind    Kind
	Code    string         // stable, snake_case; defaults to the kind
	Message string         // human readable, safe for clients
	Details map[string]any // extension members for the problem document
	Err     error          // cause; never shown to clients
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = string(e.Kind)
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k whose code is the kind itself.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Code: string(k), Message: fmt.Sprintf(format, args...)}
}

// Coded returns an error of kind k with a specific stable code.
func Coded(k Kind, code, format string, args ...any) *Error {
	return &Error{Kind: k, Code: code, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e carrying an extra detail (a problem extension member).
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Details = make(map[string]any, len(e.Details)+1)
	for k, v := range e.Details {
		c.Details[k] = v
	}
	c.Details[key] = value
	return &c
}

// Wrap returns a copy of e with cause err.
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// KindOf returns the kind of err, or Internal when err carries none.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

// CodeOf returns the stable code of err, or "internal".
func CodeOf(err error) string {
	if e, ok := As(err); ok {
		if e.Code != "" {
			return e.Code
		}
		return string(e.Kind)
	}
	return string(Internal)
}

// Is reports whether err carries the given code.
func Is(err error, code string) bool { return CodeOf(err) == code }
