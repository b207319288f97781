package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/godwit-dev/godwit/api/client"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// class says how an outcome counts.
type class int

const (
	classOK       class = iota // 2xx
	classRejected              // an expected business outcome: 402, 409, 422
	classFailed                // 5xx, transport error, timeout, any other 4xx, a dropped arrival
)

// Codes the load generator itself assigns when there is no problem code.
const (
	CodeTransport      = "transport_error" // the request never got a response
	CodeTimeout        = "timeout"         // the operation ran past Config.Timeout
	CodeClientOverload = "client_overload" // open model: the in-flight cap was reached, the arrival was dropped
	CodeBadResponse    = "bad_response"    // a 2xx whose body lacked what the next step needs
	CodeMemberToken    = "member_token"    // Config.MemberToken failed
	codeCanceled       = "canceled"        // the run was interrupted; never reported
	codeBuildRequest   = "build_request"   // the client could not build the request (never sent)
)

// outcome is the result of one request or one operation.
type outcome struct {
	status int // HTTP status; 0 when there was no response
	code   string
	class  class
}

func (o outcome) ok() bool { return o.class == classOK }

func (o outcome) String() string {
	if o.status == 0 {
		return o.code
	}
	if o.code == "" {
		return strconv.Itoa(o.status)
	}
	return strconv.Itoa(o.status) + " " + o.code
}

var okOutcome = outcome{class: classOK}

func failed(code string) outcome { return outcome{code: code, class: classFailed} }

// classify decides how a response counts. 402 (payment declined), 409 (stock,
// price, state conflicts) and 422 (business rules such as insufficient points)
// are the outcomes a healthy system gives under this traffic; every other
// non-2xx means the server or the load generator's configuration is broken.
func classify(status int, code string) outcome {
	o := outcome{status: status, code: code}
	switch {
	case status >= 200 && status < 300:
		o.class, o.code = classOK, ""
	case status == http.StatusPaymentRequired, status == http.StatusConflict, status == http.StatusUnprocessableEntity:
		o.class = classRejected
	default:
		o.class = classFailed
	}
	if o.class != classOK && o.code == "" {
		o.code = "http_" + strconv.Itoa(status)
	}
	return o
}

// maxBody bounds how much of a response is read.
const maxBody = 4 << 20

// caller sends the load generator's requests through the typed client
// generated from the API document (api/client), so a request loadgen sends is
// one the contract describes: the same paths, bodies and headers an integrator
// gets. The headers every request carries (User-Agent, baggage, Accept, the
// load-test pass) are a client-wide editor; the bearer token and
// Idempotency-Key are per call.
//
// Responses are read here rather than by ClientWithResponses' parsers: those
// read a body without bound, decode every 2xx body (a browse would decode the
// whole catalogue it only needs the status of) and, when a body does not
// decode, return an error without the status. result reads at most maxBody,
// decodes a 2xx body into a generated type only where the next step needs it,
// and keeps the status of a response whose body is wrong.
type caller struct {
	http     *http.Client
	api      *client.Client
	base     string
	requests atomic.Int64 // HTTP requests sent
}

func newCaller(hc *http.Client, base, userAgent, pass string) (*caller, error) {
	c := &caller{http: hc, base: base}
	common := func(_ context.Context, req *http.Request) error {
		req.Header.Set("User-Agent", userAgent)
		// W3C baggage: lets the server and the telemetry pipeline tell
		// synthetic traffic from real customers.
		req.Header.Set("Baggage", "synthetic=true")
		req.Header.Set("Accept", "application/json")
		if pass != "" {
			req.Header.Set(auth.LoadTestPassHeader, pass)
		}
		return nil
	}
	api, err := client.NewClient(base, client.WithHTTPClient(sender{c}), client.WithRequestEditorFn(common))
	if err != nil {
		return nil, fmt.Errorf("loadgen: Target: %w", err)
	}
	c.api = api
	return c, nil
}

// sender is the generated client's transport: it counts the requests that
// reach the wire and marks the errors of sending them, so result tells a
// transport failure from a request the client could not build.
type sender struct{ c *caller }

func (s sender) Do(req *http.Request) (*http.Response, error) {
	s.c.requests.Add(1)
	rsp, err := s.c.http.Do(req)
	if err != nil {
		return nil, sendError{err}
	}
	return rsp, nil
}

type sendError struct{ err error }

func (e sendError) Error() string { return e.err.Error() }
func (e sendError) Unwrap() error { return e.err }

// bearer is the editor list that authorises a call with token: none when the
// call goes without one (a guest).
func bearer(token string) []client.RequestEditorFn {
	if token == "" {
		return nil
	}
	return []client.RequestEditorFn{func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}}
}

// idemKey is a fresh Idempotency-Key for a value-moving POST.
func idemKey() *client.IdempotencyKey {
	k := newID()
	return &k
}

// result turns the generated client's answer to one call into an outcome.
// out, when set, receives a 2xx JSON body.
func (c *caller) result(ctx context.Context, rsp *http.Response, err error, out any) outcome {
	if err != nil {
		var se sendError
		if !errors.As(err, &se) {
			return failed(codeBuildRequest)
		}
		return transportOutcome(ctx, se.err)
	}
	defer rsp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(rsp.Body, maxBody))
	if err != nil {
		return transportOutcome(ctx, err)
	}
	// Drain what the limit left so the connection can be reused.
	_, _ = io.Copy(io.Discard, rsp.Body)

	if rsp.StatusCode >= 200 && rsp.StatusCode < 300 {
		if out != nil && json.Unmarshal(raw, out) != nil {
			return outcome{status: rsp.StatusCode, code: CodeBadResponse, class: classFailed}
		}
		return classify(rsp.StatusCode, "")
	}
	return classify(rsp.StatusCode, problemCode(rsp.Header.Get("Content-Type"), raw))
}

// problemCode reads the stable code of a problem+json (or plain JSON) error body.
func problemCode(contentType string, raw []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/problem+json" && mt != "application/json" {
		return ""
	}
	var p client.Problem
	if json.Unmarshal(raw, &p) != nil {
		return ""
	}
	return sanitizeCode(p.Code)
}

// sanitizeCode keeps codes usable as table cells and map keys even when a
// broken server sends something odd.
func sanitizeCode(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '=' {
			return '_'
		}
		return r
	}, s)
}

func transportOutcome(ctx context.Context, err error) outcome {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return failed(CodeTimeout)
	case ctx.Err() != nil:
		return failed(codeCanceled)
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return failed(CodeTimeout)
	default:
		return failed(CodeTransport)
	}
}

// newID returns a random version 4 UUID, used for Idempotency-Keys and
// activity external ids: they must be unique across runs, so they do not come
// from the seeded generator.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// newRunID returns a short random id naming this run's members.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
