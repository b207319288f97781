package httpx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// CodeIdempotencyKeyInProgress is the error code (Conflict, with Retry-After)
// when a request with the same Idempotency-Key is still being processed; a
// Peer retries on it.
const CodeIdempotencyKeyInProgress = "idempotency_key_in_progress"

// HandlerFunc is an HTTP handler that returns its error instead of writing it,
// so every failure becomes a problem response in one place.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Idempotency says how a route treats the Idempotency-Key header.
type Idempotency int

// The idempotency modes.
const (
	IdempotencyNone     Idempotency = iota // the header is ignored
	IdempotencyOptional                    // honoured when sent
	IdempotencyRequired                    // a request without it is rejected
)

// Route is one endpoint: its method and pattern (net/http ServeMux syntax), who
// may call it, how it treats Idempotency-Key, and its handler.
type Route struct {
	Method      string
	Pattern     string // e.g. "/v1/members/{id}"
	Summary     string // one line, for docs
	Access      auth.Policy
	Idempotency Idempotency
	MaxBody     int64 // 0: DefaultMaxBody
	// Atomic declares that the handler's whole effect is database writes made
	// through db.InTx, with no call to anything outside the database (no payment,
	// partner or fulfilment call, no message sent). An Idempotency-Key on such a
	// route is then claimed, run and answered in one transaction — one commit
	// instead of three — and a 5xx or panic leaves no trace of the request.
	// A handler with an outside effect must not set it: the effect would run
	// while the transaction is open and could not be rolled back with it.
	Atomic bool
	// GuestScope, on a route anonymous callers may send an Idempotency-Key
	// to, names what a guest's request acts on (e.g. the cart_id of a
	// checkout); a guest's key is scoped to it, so unrelated guests who send
	// the same key never collide. nil scopes a guest's key to the whole
	// request (method, path, body). See idempotencyOwner.
	GuestScope GuestScopeFunc
	Handler    HandlerFunc
}

// API routes requests to registered routes, authenticating each and applying
// its policy, body limit and idempotency mode.
type API struct {
	mux    *http.ServeMux
	keys   *auth.Keys
	idem   *idempotency.Store
	log    *slog.Logger
	wait   time.Duration
	table  []Route
	limits *rateLimiter
	// revoked, when set, is asked about every authenticated request's token.
	revoked func(ctx context.Context, tokenID string) (bool, error)
}

// SetRevocationCheck makes every authenticated request consult check, so a
// revoked token is refused with 401 token_revoked.
func (a *API) SetRevocationCheck(check func(ctx context.Context, tokenID string) (bool, error)) {
	a.revoked = check
}

// NewAPI returns an empty API. keys verify bearer tokens; idem stores
// idempotency records (nil disables the mechanism, for tests of other parts).
func NewAPI(keys *auth.Keys, idem *idempotency.Store, log *slog.Logger) *API {
	defaults.Fill(defaults.Fields{Logger: &log})
	a := &API{mux: http.NewServeMux(), keys: keys, idem: idem, log: log, wait: 30 * time.Second}
	return a
}

// Add registers routes.
func (a *API) Add(routes ...Route) {
	for _, rt := range routes {
		a.table = append(a.table, rt)
		a.mux.Handle(rt.Method+" "+rt.Pattern, a.wrap(rt))
	}
}

// Handle registers a plain http.Handler outside the route table (static assets, /metrics).
func (a *API) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// Routes returns the registered route table (for the OpenAPI and authorisation tests).
func (a *API) Routes() []Route { return append([]Route(nil), a.table...) }

// Logger returns the API's logger.
func (a *API) Logger() *slog.Logger { return a.log }

// ServeHTTP implements http.Handler. Unknown paths and method mismatches get
// problem responses too.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer a.recoverPanic(w, r)
	// API answers carry personal data and tokens: no cache may keep them.
	w.Header().Set("Cache-Control", "no-store")
	if err := checkURL(r); err != nil {
		WriteError(w, r, a.log, err)
		return
	}
	a.mux.ServeHTTP(&muxErrors{ResponseWriter: w, r: r, log: a.log}, r)
	// The mux set r.Pattern to the route it matched ("GET /v1/members/{id}"):
	// the server span's http.route is its template, without the method.
	if _, route, ok := strings.Cut(r.Pattern, "/"); ok {
		trace.SpanFromContext(r.Context()).SetAttributes(semconv.HTTPRoute("/" + route))
	}
}

func (a *API) wrap(rt Route) http.Handler {
	maxBody := rt.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)

		p, err := a.keys.Authenticate(r.Header.Get("Authorization"))
		if err == nil && p != nil && a.revoked != nil {
			var revoked bool
			if revoked, err = a.revoked(ctx, p.TokenID); err == nil && revoked {
				err = errs.Coded(errs.Unauthorized, "token_revoked", "the bearer token has been revoked")
			}
		}
		if a.limits != nil {
			err = a.limit(ctx, p, r, err) // a 429 says when to retry (WriteError)
		}
		if err == nil {
			err = rt.Access.Check(p, r.PathValue)
		}
		if err != nil {
			WriteError(w, r, a.log, err)
			return
		}
		if p != nil {
			ctx = auth.WithPrincipal(ctx, p)
			r = r.WithContext(ctx)
		}
		h := rt.Handler
		if rt.Idempotency != IdempotencyNone && a.idem != nil {
			h = a.idempotent(rt, h)
		}
		if err := h(w, r); err != nil {
			WriteError(w, r, a.log, err)
		}
	})
}

// limit applies the rate limits given the outcome of authentication: a request
// whose token was refused counts against its client address's anonymous limit,
// so guessing tokens is throttled like any anonymous traffic (429 once over,
// else the 401 stands).
func (a *API) limit(ctx context.Context, p *auth.Principal, r *http.Request, authErr error) error {
	if authErr == nil {
		return a.rateLimit(ctx, p, r)
	}
	if errs.KindOf(authErr) == errs.Unauthorized {
		if err := a.limits.allow(nil, r); err != nil {
			return err
		}
	}
	return authErr
}

// idempotent runs h at most once per (owner, Idempotency-Key), the owner being
// the caller or, for a guest, the route's guest scope: a replay gets
// the stored response with Idempotency-Replayed: true; the same key with a
// different request is 422; a concurrent duplicate waits for the first to finish.
func (a *API) idempotent(rt Route, h HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			if rt.Idempotency == IdempotencyRequired {
				return errs.Coded(errs.Invalid, "idempotency_key_required", "this endpoint needs an Idempotency-Key header")
			}
			return h(w, r)
		}
		if err := idempotency.ValidateKey(key); err != nil {
			return err
		}
		body, hash, err := fingerprint(r)
		if err != nil {
			return err
		}
		owner := idempotencyOwner(rt, r, body, hash)
		r = r.WithContext(context.WithValue(r.Context(), ownerKey{}, owner))
		if rt.Atomic {
			return a.atomically(w, r, h, owner, key, hash, body)
		}
		return a.claimAndRun(w, r, h, owner, key, hash)
	}
}

// fingerprint reads r's body (leaving r.Body readable again from the start)
// and hashes it with the method and path: the same key sent with a different
// hash is a different request.
func fingerprint(r *http.Request) (body []byte, hash string, err error) {
	body, err = io.ReadAll(r.Body)
	if err != nil {
		return nil, "", decodeError(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.New()
	fmt.Fprintf(sum, "%s %s\n", r.Method, r.URL.Path)
	sum.Write(body)
	return body, hex.EncodeToString(sum.Sum(nil)), nil
}

// claimAndRun claims the key, waiting up to a.wait while a concurrent
// duplicate holds it, then runs h and stores its response before answering.
// A replay or a key still held elsewhere is answered without running h. While
// h runs, the claim's lease is renewed (idempotency.Held), so a retry takes
// over only the claim of a process that died; if a renewal finds the claim
// taken over, h's context is cancelled and its answer is not stored.
func (a *API) claimAndRun(w http.ResponseWriter, r *http.Request, h HandlerFunc, owner, key, hash string) error {
	waitCtx, cancel := context.WithTimeout(r.Context(), a.wait)
	out, err := a.idem.Await(waitCtx, owner, key, hash)
	cancel()
	if err != nil {
		return err
	}
	if done, err := answerClaimed(w, r, out); done || err != nil {
		return err
	}
	ctx, stop := context.WithCancelCause(r.Context())
	defer stop(nil)
	held := a.idem.Hold(owner, key, out, func() { stop(idempotency.ErrClaimLost) })
	defer held.Stop()
	rec := a.record(r.WithContext(ctx), h, held)
	// Persist before answering, so a concurrent duplicate replays exactly this.
	a.settle(r.Context(), held, rec)
	rec.flush(w)
	return nil
}

// record runs h into a recorder; an error h returns is recorded as its
// problem response. A panic frees the key for a retry and goes on to the
// recoverer.
func (a *API) record(r *http.Request, h HandlerFunc, held *idempotency.Held) *recorder {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	var herr error
	func() {
		defer func() {
			if p := recover(); p != nil {
				// Free the key for a retry before the panic reaches the recoverer.
				_ = held.Release(context.WithoutCancel(r.Context()))
				panic(p)
			}
		}()
		herr = h(rec, r)
	}()
	if herr != nil {
		rec = &recorder{header: http.Header{}}
		WriteError(rec, r, a.log, herr)
	}
	return rec
}

// settle stores rec as the key's response, or releases the key when rec is
// not a final answer (notFinal) so that a retry runs the request again. It
// outlives a cancelled request. A claim taken over meanwhile is the retry's to
// answer: nothing is stored.
func (a *API) settle(ctx context.Context, held *idempotency.Held, rec *recorder) {
	store := context.WithoutCancel(ctx)
	var err error
	if rec.notFinal() {
		err = held.Release(store)
	} else {
		err = held.Complete(store, rec.response())
	}
	switch {
	case errors.Is(err, idempotency.ErrClaimLost):
		a.log.WarnContext(ctx, "idempotency claim taken over while the request ran; its answer is not stored")
	case err != nil:
		a.log.ErrorContext(ctx, "idempotency settle failed", "error", err)
	}
}

// errServerFailed rolls back an atomic request whose answer is not final
// (5xx, or a problem saying when to retry).
var errServerFailed = errors.New("httpx: handler answered 5xx")

// atomically runs an Atomic route's handler inside the transaction that claims
// and completes its Idempotency-Key. A retryable database error (deadlock,
// serialisation failure) reruns the handler on a fresh transaction; a 5xx rolls
// the whole request back, claim included, so a retry starts clean.
func (a *API) atomically(w http.ResponseWriter, r *http.Request, h HandlerFunc, owner, key, hash string, body []byte) error {
	var rec *recorder
	out, err := a.idem.Atomically(r.Context(), owner, key, hash, func(ctx context.Context) (idempotency.Response, error) {
		rec = &recorder{header: http.Header{}, status: http.StatusOK}
		r := r.WithContext(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if herr := h(rec, r); herr != nil {
			if db.IsRetryable(herr) {
				return idempotency.Response{}, herr
			}
			rec = &recorder{header: http.Header{}}
			WriteError(rec, r, a.log, herr)
		}
		if rec.notFinal() {
			return idempotency.Response{}, errServerFailed
		}
		return rec.response(), nil
	})
	switch {
	case errors.Is(err, errServerFailed):
		rec.flush(w)
		return nil
	case err != nil:
		return err
	}
	if done, err := answerClaimed(w, r, out); done || err != nil {
		return err
	}
	rec.flush(w)
	return nil
}

// answerClaimed answers a request whose key is not (or no longer) its own to
// run: a replay of the stored response, or 409 while another request holds it.
func answerClaimed(w http.ResponseWriter, r *http.Request, out idempotency.Outcome) (done bool, err error) {
	switch {
	case out.Replay != nil:
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.Bool("http.idempotency.replayed", true))
		w.Header().Set("Content-Type", out.Replay.ContentType)
		w.Header().Set("Idempotency-Replayed", "true")
		w.WriteHeader(out.Replay.StatusCode)
		_, _ = w.Write(out.Replay.Body)
		return true, nil
	case !out.Owned:
		w.Header().Set("Retry-After", "1")
		return true, errs.Coded(errs.Conflict, CodeIdempotencyKeyInProgress, "a request with this Idempotency-Key is still being processed; retry shortly")
	}
	return false, nil
}

func (a *API) recoverPanic(w http.ResponseWriter, r *http.Request) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	err := fmt.Errorf("panic: %v", p)
	span := trace.SpanFromContext(r.Context())
	span.RecordError(err, trace.WithAttributes(attribute.String("exception.stacktrace", string(debug.Stack()))))
	span.SetStatus(codes.Error, "panic")
	a.log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", logPath(r), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	WriteError(w, r, nil, errs.New(errs.Internal, "internal error").Wrap(err))
}

// recorder buffers a response so it can be stored before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (rr *recorder) Header() http.Header { return rr.header }

// notFinal reports whether the recorded answer must not become its
// Idempotency-Key's answer: a server failure (5xx), a request its client
// abandoned (499: the retry must run it again), or a problem that says
// when to retry (Retry-After, e.g. 409 checkout_in_progress while another
// process still holds the work). Stored, it would be replayed to every retry
// for as long as the key is kept, though the work may since have finished.
func (rr *recorder) notFinal() bool {
	return rr.status >= 500 || rr.status == StatusClientClosedRequest || rr.header.Get("Retry-After") != ""
}

// response is what gets stored for replay.
func (rr *recorder) response() idempotency.Response {
	return idempotency.Response{StatusCode: rr.status, ContentType: rr.header.Get("Content-Type"), Body: rr.body.Bytes()}
}

// flush sends the recorded response to w.
func (rr *recorder) flush(w http.ResponseWriter) {
	for k, v := range rr.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rr.status)
	_, _ = w.Write(rr.body.Bytes())
}
func (rr *recorder) WriteHeader(code int) {
	if !rr.wrote {
		rr.status, rr.wrote = code, true
	}
}
func (rr *recorder) Write(b []byte) (int, error) {
	if !rr.wrote {
		rr.WriteHeader(http.StatusOK)
	}
	return rr.body.Write(b)
}

// muxErrors turns ServeMux's own plain-text 404 and 405 into problem responses.
type muxErrors struct {
	http.ResponseWriter
	r       *http.Request
	log     *slog.Logger
	swallow bool
}

func (m *muxErrors) WriteHeader(code int) {
	plain := m.Header().Get("Content-Type") == "text/plain; charset=utf-8"
	if plain && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		m.swallow = true
		m.Header().Del("X-Content-Type-Options")
		err := errs.Coded(errs.NotFound, "route_not_found", "no route for %s %s", m.r.Method, m.r.URL.Path)
		if code == http.StatusMethodNotAllowed {
			err = errs.Coded(kindMethodNotAllowed, "method_not_allowed", "method %s is not allowed on %s", m.r.Method, m.r.URL.Path)
		}
		WriteError(m.ResponseWriter, m.r, m.log, err)
		return
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *muxErrors) Write(b []byte) (int, error) {
	if m.swallow {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (m *muxErrors) Unwrap() http.ResponseWriter { return m.ResponseWriter }
