package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// This file is the client half of service-to-service calls in split mode: one
// mechanism (authentication, timeouts, bounded retries, problem+json mapped
// back into *errs.Error) that every service's HTTP client uses.

// TokenSource supplies the bearer token a peer call carries.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// ServiceTokens returns a TokenSource that mints service-scope tokens for
// subject (the calling service's name) from the shared secret, reusing each
// token until shortly before it expires. The cache only saves signing work:
// a fresh process simply mints a new token.
func ServiceTokens(keys *auth.Keys, subject string) TokenSource {
	return &serviceTokens{keys: keys, subject: subject, ttl: time.Hour}
}

type serviceTokens struct {
	keys    *auth.Keys
	subject string
	ttl     time.Duration

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

func (s *serviceTokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.renewAt) {
		return s.token, nil
	}
	tok, err := s.keys.Mint(auth.ScopeService, s.subject, s.ttl)
	if err != nil {
		return "", fmt.Errorf("service token for %s: %w", s.subject, err)
	}
	s.token, s.renewAt = tok, time.Now().Add(s.ttl*3/4)
	return tok, nil
}

// StaticToken is a TokenSource that always returns the same token (tests, tools).
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// DefaultPeerAttempts bounds how often a retryable peer call is tried.
const DefaultPeerAttempts = 3

// Peer calls one remote Godwit service. Its http.Client carries the timeout
// of one attempt (http.Client.Timeout) and the instrumented transport that
// propagates trace context and baggage.
type Peer struct {
	name    string
	base    string
	hc      *http.Client
	tokens  TokenSource
	retries int
	backoff time.Duration
}

// NewPeer returns a Peer for the service called name at baseURL. hc nil
// means http.DefaultClient; tokens nil sends no Authorization header.
func NewPeer(name, baseURL string, hc *http.Client, tokens TokenSource) *Peer {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Peer{name: name, base: strings.TrimRight(baseURL, "/"), hc: hc, tokens: tokens,
		retries: DefaultPeerAttempts, backoff: 100 * time.Millisecond}
}

// Name returns the peer's service name.
func (p *Peer) Name() string { return p.name }

// Call is one request to a peer.
type Call struct {
	Method string
	// Route is the path template, e.g. "/internal/v1/inventory/reservations/{id}/commit";
	// it names the client span. Path is the concrete path.
	Route, Path string
	Body        any // JSON-encoded when non-nil
	Out         any // the 2xx JSON response is decoded into it when non-nil
	// IdempotencyKey, when set, is sent as Idempotency-Key and makes the call
	// safe to retry: the server answers a repeat with the first response.
	IdempotencyKey string
	// Idempotent marks a call whose repetition has no further effect even
	// without a key (the operation is idempotent on its own arguments).
	Idempotent bool
	// Expected lists problem codes that answer the call rather than fail it,
	// such as "order_not_found" from a lookup that often misses: Do still
	// returns them as errors, but the client span (through ExpectedAnswers)
	// is not marked in error, so a normal outcome does not count as a failed
	// trace in tail sampling and `godwit trace`.
	Expected []string
}

func (c Call) retryable() bool {
	return c.Method == http.MethodGet || c.Method == http.MethodHead || c.IdempotencyKey != "" || c.Idempotent
}

type (
	routeKey    struct{}
	expectedKey struct{}
)

// ClientSpanName names otelhttp client spans after the call's route template
// ("POST /internal/v1/orders"), falling back to the method alone; pass it to
// otelhttp.WithSpanNameFormatter.
func ClientSpanName(_ string, r *http.Request) string {
	if route, ok := r.Context().Value(routeKey{}).(string); ok && route != "" {
		return r.Method + " " + route
	}
	return r.Method
}

// Do performs c. Failures come back as *errs.Error: the peer's own problem
// (same kind, code and details), errs Unavailable "peer_unavailable" when the
// peer cannot be reached, or errs Timeout "peer_timeout" when it did not
// answer in time. Retryable calls are tried up to three times with backoff
// after connection failures and 502/503/504 answers; a timed-out call is not
// repeated (its effect is unknown and its time is spent).
func (p *Peer) Do(ctx context.Context, c Call) error {
	var body []byte
	if c.Body != nil {
		var err error
		if body, err = json.Marshal(c.Body); err != nil {
			return fmt.Errorf("%s %s: encode: %w", c.Method, c.Path, err)
		}
	}
	route := c.Route
	if route == "" {
		route = c.Path
	}
	ctx = context.WithValue(ctx, routeKey{}, route)
	if len(c.Expected) > 0 {
		ctx = context.WithValue(ctx, expectedKey{}, c.Expected)
	}
	var last error
	for attempt := 1; ; attempt++ {
		retry, err := p.once(ctx, c, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt >= p.retries || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(p.backoff << (attempt - 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
	}
	if errs.Is(last, CodeIdempotencyKeyInProgress) {
		// The peer is still working on the first request: its outcome is
		// unknown, which callers must treat as transient, never as a conflict.
		e, _ := errs.As(last)
		c := *e
		c.Kind = errs.Unavailable
		c.Details = CloneDetails(e.Details)
		if c.Details == nil {
			c.Details = map[string]any{}
		}
		c.Details["peer"] = p.name
		return &c
	}
	return last
}

// once makes one attempt and says whether a failure may be retried.
func (p *Peer) once(ctx context.Context, c Call, body []byte) (retry bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, p.base+c.Path, rd)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", c.Method, c.Path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.IdempotencyKey)
	}
	if p.tokens != nil {
		tok, err := p.tokens.Token(ctx)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := p.hc.Do(req)
	if err != nil {
		perr := p.transportError(ctx, err)
		if errs.KindOf(perr) == errs.Timeout {
			return false, perr
		}
		// A refused connection never reached the peer: always safe to repeat.
		return c.retryable() || isRefused(err), perr
	}
	defer res.Body.Close()
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		if c.Out == nil || res.StatusCode == http.StatusNoContent {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			return false, nil
		}
		dec := json.NewDecoder(io.LimitReader(res.Body, 16<<20))
		if err := dec.Decode(c.Out); err != nil {
			if perr := p.transportError(ctx, err); errs.KindOf(perr) == errs.Timeout {
				return false, perr
			}
			return false, errs.Coded(errs.BadGateway, "peer_bad_response", "the %s service sent an unreadable answer", p.name).
				With("peer", p.name).Wrap(err)
		}
		return false, nil
	}
	perr := ErrorFromResponse(res)
	switch res.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return c.retryable(), perr
	case http.StatusConflict:
		// The first request with this key is still running on the peer.
		return c.IdempotencyKey != "" && errs.Is(perr, CodeIdempotencyKeyInProgress), perr
	}
	return false, perr
}

// transportError maps a failed round trip to peer_timeout or peer_unavailable.
func (p *Peer) transportError(ctx context.Context, err error) error {
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	if timedOut {
		return errs.Coded(errs.Timeout, "peer_timeout", "the %s service did not answer in time", p.name).With("peer", p.name).Wrap(err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return errs.Coded(errs.Unavailable, "request_cancelled", "the call to the %s service was cancelled", p.name).With("peer", p.name).Wrap(err)
	}
	return errs.Coded(errs.Unavailable, "peer_unavailable", "the %s service is unavailable", p.name).With("peer", p.name).Wrap(err)
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// kindOfStatus is statusOf read backwards.
var kindOfStatus = func() map[int]errs.Kind {
	m := make(map[int]errs.Kind, len(statusOf))
	for k, s := range statusOf {
		m[s] = k
	}
	return m
}()

// ErrorFromResponse turns a non-2xx response into the *errs.Error the peer
// returned: the kind from the status (the status table read backwards), and
// the problem's code, detail and extension members as Code, Message and
// Details. It reads (but does not close) the body. Numbers in details keep
// their exact digits (json.Number).
func ErrorFromResponse(res *http.Response) error {
	kind, ok := kindOfStatus[res.StatusCode]
	if !ok {
		switch {
		case res.StatusCode >= 500:
			kind = errs.Internal
		case res.StatusCode >= 400:
			kind = errs.Invalid
		default:
			kind = errs.BadGateway
		}
	}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var p map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil || p == nil {
		return errs.New(kind, "%s", http.StatusText(res.StatusCode)).
			Wrap(fmt.Errorf("status %d, not a problem document", res.StatusCode))
	}
	code, _ := p["code"].(string)
	if code == "" {
		code = string(kind)
	}
	detail, _ := p["detail"].(string)
	e := errs.Coded(kind, code, "%s", detail)
	for k, v := range p {
		if !reserved[k] {
			e = e.With(k, v)
		}
	}
	if tid, ok := p["trace_id"].(string); ok && kind == errs.Internal {
		e = e.Wrap(fmt.Errorf("peer internal error (trace %s)", tid))
	}
	return e
}

// ExpectedAnswers wraps the transport that otelhttp's client transport
// calls: when a problem answer carries a code the call listed in
// Call.Expected, it marks the client span Ok. An Ok status outranks the Error
// otelhttp then sets for the 4xx (a span's status only rises from Unset to
// Error to Ok), so an expected miss leaves no error span while any other 4xx
// or 5xx still does. The answer's body is read here (it is small: a problem
// document) and handed on unchanged.
func ExpectedAnswers(base http.RoundTripper) http.RoundTripper {
	return expectedAnswers{base: base}
}

type expectedAnswers struct{ base http.RoundTripper }

func (t expectedAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	expected, _ := req.Context().Value(expectedKey{}).([]string)
	if err != nil || len(expected) == 0 || res.StatusCode < 400 {
		return res, err
	}
	body, rerr := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	_ = res.Body.Close()
	if rerr != nil {
		res.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{rerr}))
		return res, nil
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" && slices.Contains(expected, p.Code) {
		trace.SpanFromContext(req.Context()).SetStatus(codes.Ok, "")
	}
	return res, nil
}

// errReader fails every read with err: the rest of a body whose reading failed.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
