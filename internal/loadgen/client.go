package loadgen

import (
	"bytes"
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

// caller sends requests with the headers every load generator request carries.
type caller struct {
	client    *http.Client
	base      string
	userAgent string
	pass      string       // load-test pass, sent on every request when set
	requests  atomic.Int64 // HTTP requests sent
}

// request is one HTTP call. out, when set, receives a 2xx JSON body.
type request struct {
	method string
	path   string
	token  string
	idem   bool // send a fresh Idempotency-Key
	body   any
	out    any
}

func (c *caller) do(ctx context.Context, r request) outcome {
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return failed("encode_request")
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, body)
	if err != nil {
		return failed("bad_request_url")
	}
	req.Header.Set("User-Agent", c.userAgent)
	// W3C baggage: lets the server and the telemetry pipeline tell synthetic
	// traffic from real customers.
	req.Header.Set("Baggage", "synthetic=true")
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if c.pass != "" {
		req.Header.Set(auth.LoadTestPassHeader, c.pass)
	}
	if r.idem {
		req.Header.Set("Idempotency-Key", newID())
	}
	c.requests.Add(1)
	resp, err := c.client.Do(req)
	if err != nil {
		return transportOutcome(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return transportOutcome(ctx, err)
	}
	// Drain what the limit left so the connection can be reused.
	_, _ = io.Copy(io.Discard, resp.Body)

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if r.out != nil && json.Unmarshal(raw, r.out) != nil {
			return outcome{status: resp.StatusCode, code: CodeBadResponse, class: classFailed}
		}
		return classify(resp.StatusCode, "")
	}
	return classify(resp.StatusCode, problemCode(resp.Header.Get("Content-Type"), raw))
}

// problemCode reads the stable code of a problem+json (or plain JSON) error body.
func problemCode(contentType string, raw []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/problem+json" && mt != "application/json" {
		return ""
	}
	var p struct {
		Code string `json:"code"`
	}
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
