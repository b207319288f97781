// Package httpx is Godwit's HTTP platform: routes with access policies, JSON
// decoding with limits, problem+json errors (RFC 9457), panic recovery, and the
// Idempotency-Key mechanism shared by every value-moving endpoint.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/cardnum"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// statusOf is the one table mapping error kinds to HTTP status codes.
var statusOf = map[errs.Kind]int{
	errs.Invalid:         http.StatusBadRequest,
	errs.Unauthorized:    http.StatusUnauthorized,
	errs.PaymentRequired: http.StatusPaymentRequired,
	errs.Forbidden:       http.StatusForbidden,
	errs.NotFound:        http.StatusNotFound,
	errs.Conflict:        http.StatusConflict,
	errs.Gone:            http.StatusGone,
	errs.TooLarge:        http.StatusRequestEntityTooLarge,
	errs.Unsupported:     http.StatusUnsupportedMediaType,
	errs.Unprocessable:   http.StatusUnprocessableEntity,
	errs.TooMany:         http.StatusTooManyRequests,
	errs.Internal:        http.StatusInternalServerError,
	errs.BadGateway:      http.StatusBadGateway,
	errs.Unavailable:     http.StatusServiceUnavailable,
	errs.Timeout:         http.StatusGatewayTimeout,
	kindMethodNotAllowed: http.StatusMethodNotAllowed,
	errs.ClientClosed:    StatusClientClosedRequest,
}

// StatusClientClosedRequest is the status recorded (on the span, in metrics
// and the access log) for a request whose client disconnected before the
// answer: nginx's 499. It is never a final answer to an Idempotency-Key.
const StatusClientClosedRequest = 499

// kindMethodNotAllowed is only produced by the router itself.
const kindMethodNotAllowed errs.Kind = "method_not_allowed"

// StatusOf returns the HTTP status for err.
func StatusOf(err error) int {
	if s, ok := statusOf[errs.KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemContentType is the media type of error responses.
const ProblemContentType = "application/problem+json"

// reserved problem members that details may not overwrite.
var reserved = map[string]bool{"type": true, "title": true, "status": true, "detail": true, "code": true, "instance": true, "trace_id": true}

// Problem renders err as an RFC 9457 problem document. Messages of internal
// errors are never sent: the client gets a generic text and the trace id.
func Problem(err error, r *http.Request) (int, map[string]any) {
	status := StatusOf(err)
	code := errs.CodeOf(err)
	detail := http.StatusText(status)
	var details map[string]any
	if e, ok := errs.As(err); ok && status != http.StatusInternalServerError {
		detail = e.Message
		details = e.Details
	} else if status == http.StatusInternalServerError {
		detail = "an unexpected error occurred; quote the trace_id when reporting it"
	}
	p := make(map[string]any, 8+len(details))
	for k, v := range details {
		if !reserved[k] {
			p[k] = v
		}
	}
	p["type"] = "urn:godwit:problem:" + code
	p["title"] = statusText(status)
	p["status"] = status
	p["detail"] = detail
	p["code"] = code
	if r != nil {
		p["instance"] = cardnum.Redact(r.URL.Path)
		if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
			p["trace_id"] = sc.TraceID().String()
		}
	}
	return status, p
}

// WriteError writes err as problem+json, records it on the request's span and
// logs server-side failures with their cause. An error carrying the detail
// retry_after_seconds (an int; see RetryLater) also gets a Retry-After header.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	err = clientClosed(r, err)
	err = databaseProblem(err)
	status, body := Problem(err, r)
	span := trace.SpanFromContext(r.Context())
	span.SetAttributes(attribute.String("error.type", body["code"].(string)))
	if status >= 500 {
		span.RecordError(err)
		span.SetStatus(codes.Error, body["code"].(string))
		if log != nil {
			// Request values stay out of the log: the route's pattern, not the
			// path, and the error with control bytes and card numbers masked.
			log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", logPath(r), "status", status, "error", loggable(err.Error()))
		}
	}
	if status == StatusClientClosedRequest && log != nil {
		log.InfoContext(r.Context(), "client closed the request before the answer", "method", r.Method, "path", logPath(r))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="godwit"`)
	}
	if after := retryAfter(err); after != "" {
		// A problem that says when to retry is not a final answer; an
		// Idempotency-Key is not settled with it (see settle).
		w.Header().Set("Retry-After", after)
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// clientClosed turns an unclassified failure caused by the request's own
// context being cancelled (the client disconnected mid-request, e.g. killed)
// into a 499: the work stopped because nobody waits for it, not because the
// server failed, so it must not read as a 500 in logs, spans and error rates.
func clientClosed(r *http.Request, err error) error {
	if errs.KindOf(err) != errs.Internal || r == nil || !errors.Is(r.Context().Err(), context.Canceled) || !errors.Is(err, context.Canceled) {
		return err
	}
	return errs.New(errs.ClientClosed, "the client closed the request before the answer").Wrap(err)
}

// statusText is http.StatusText, knowing 499 too.
func statusText(status int) string {
	if status == StatusClientClosedRequest {
		return "Client Closed Request"
	}
	return http.StatusText(status)
}

// Codes of a database failure that reached the edge unclassified.
const (
	// CodeDatabaseUnavailable (503): the database could not be reached or the
	// connection was lost (a restart, a terminated backend).
	CodeDatabaseUnavailable = "database_unavailable"
	// CodeDatabaseTimeout (503): the database cancelled a statement whose
	// statement_timeout or lock_timeout ran out.
	CodeDatabaseTimeout = "database_timeout"
)

// databaseProblem turns an unexpected error (kind Internal) caused by the
// database being unreachable or timing out into a 503 the client may retry
// (with the same Idempotency-Key: a 5xx is never stored as the key's answer)
// instead of a 500 that reads like a bug. Details the error carried, such as
// a checkout's failure_step, are kept; the cause is still logged.
func databaseProblem(err error) error {
	if errs.KindOf(err) != errs.Internal {
		return err
	}
	var p *errs.Error
	switch {
	case db.IsUnavailable(err):
		p = errs.Coded(errs.Unavailable, CodeDatabaseUnavailable, "the database is unavailable; retry shortly")
	case db.IsTimeout(err):
		p = errs.Coded(errs.Unavailable, CodeDatabaseTimeout, "the database did not answer in time; retry shortly")
	default:
		return err
	}
	if e, ok := errs.As(err); ok {
		for k, v := range e.Details {
			p = p.With(k, v)
		}
	}
	return RetryLater(p, 1).Wrap(err)
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Reply ends a handler that called a service: a failed call's error is
// returned, to be written as a problem; a result is written as JSON with
// status. v is built before err is looked at, so build it only from values
// that are safe to convert when zero:
//
//	o, err := s.Get(ctx, id)
//	return httpx.Reply(w, http.StatusOK, toJSON(o), err)
func Reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	WriteJSON(w, status, v)
	return nil
}

// Created is the status of a create that may be a replay: 201 Created, or
// 200 OK when the result is that of an earlier identical request (a replayed
// external id or reference) and nothing new was made.
func Created(replayed bool) int {
	if replayed {
		return http.StatusOK
	}
	return http.StatusCreated
}

// CloneDetails is a helper for handlers building problem details.
func CloneDetails(m map[string]any) map[string]any { return maps.Clone(m) }

// logPath names the request's route for a log line: its pattern when routed
// (no ids), else the path made loggable.
func logPath(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return loggable(r.URL.Path)
}
