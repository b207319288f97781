package httpx

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// RateLimits caps requests per caller. A zero rate turns a class off. Limits
// live in each replica's memory: they protect the replica, and correctness
// never depends on them. A request carrying a valid load-test pass
// (auth.LoadTestPassHeader, minted with the signing secret, see
// auth.Keys.MintLoadTestPass) is not limited: that is how `godwit loadgen`
// drives a server that runs with its default limits.
type RateLimits struct {
	Member    Limit // per member token (by member id)
	Service   Limit // per service or admin token (by subject)
	Anonymous Limit // per client IP, for requests without a token
	// TrustedProxies decide the client IP behind a reverse proxy (see
	// TrustedProxies.ClientAddr); none: the TCP peer.
	TrustedProxies TrustedProxies
	// MaxKeys bounds how many callers are tracked; the least recently seen
	// are forgotten first. Default 100,000.
	MaxKeys int
}

// Limit is a token bucket: PerSecond sustained, Burst at once.
type Limit struct {
	PerSecond float64
	Burst     int
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

type rateLimiter struct {
	cfg  RateLimits
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]*limiterEntry
	// pass is the last load-test pass verified: a load test sends the same
	// one on every request, so its signature is checked once, not each time.
	pass atomic.Pointer[verifiedPass]
}

type verifiedPass struct {
	raw string
	p   *auth.Principal
}

// SetRateLimits enables per-caller rate limiting on every route; a caller over
// its limit gets 429 rate_limited with Retry-After.
func (a *API) SetRateLimits(l RateLimits) {
	if l.MaxKeys <= 0 {
		l.MaxKeys = 100_000
	}
	a.limits = &rateLimiter{cfg: l, now: time.Now, keys: map[string]*limiterEntry{}}
}

// DefaultRateLimits are the limits `godwit serve` applies unless told
// otherwise: a member 20 requests/s (burst 40), a client IP without a token 50/s
// (burst 100), service and admin tokens unlimited.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Member:    Limit{PerSecond: 20, Burst: 40},
		Anonymous: Limit{PerSecond: 50, Burst: 100},
		Service:   Limit{PerSecond: 0, Burst: 1000},
	}
}

// rateLimit applies the rate limits to a request by p (nil: anonymous). A
// request with a load-test pass skips them once the pass is verified and found
// not revoked; a pass that is invalid, expired or revoked is refused with 401,
// so a misconfigured load test fails loudly instead of being throttled.
func (a *API) rateLimit(ctx context.Context, p *auth.Principal, r *http.Request) error {
	if pass := r.Header.Get(auth.LoadTestPassHeader); pass != "" {
		var lp *auth.Principal
		if v := a.limits.pass.Load(); v != nil && v.raw == pass && a.limits.now().Before(v.p.Expires) {
			lp = v.p
		} else {
			var err error
			if lp, err = a.keys.VerifyLoadTestPass(pass); err != nil {
				return err
			}
			a.limits.pass.Store(&verifiedPass{raw: pass, p: lp})
		}
		if a.revoked != nil {
			revoked, err := a.revoked(ctx, lp.TokenID)
			if err != nil {
				return err
			}
			if revoked {
				return errs.Coded(errs.Unauthorized, "load_test_pass_revoked", "the %s has been revoked", auth.LoadTestPassHeader)
			}
		}
		return nil
	}
	return a.limits.allow(p, r)
}

// allow checks the caller's bucket and returns a 429 error when it is empty.
func (rl *rateLimiter) allow(p *auth.Principal, r *http.Request) error {
	var (
		key string
		l   Limit
	)
	switch {
	case p == nil:
		key, l = "ip:"+rl.cfg.TrustedProxies.ClientAddr(r), rl.cfg.Anonymous
	case p.Scope == auth.ScopeMember:
		key, l = p.Actor(), rl.cfg.Member
	default:
		key, l = p.Actor(), rl.cfg.Service
	}
	if l.PerSecond <= 0 {
		return nil
	}
	now := rl.now()
	rl.mu.Lock()
	e := rl.keys[key]
	if e == nil {
		if len(rl.keys) >= rl.cfg.MaxKeys {
			rl.evictLocked()
		}
		burst := max(l.Burst, 1)
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(l.PerSecond), burst)}
		rl.keys[key] = e
	}
	e.seen = now
	res := e.lim.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay > 0 {
		res.CancelAt(now) // a refused request must not use up future tokens
	}
	rl.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	retry := int(math.Ceil(delay.Seconds()))
	return RetryLater(errs.Coded(errs.TooMany, "rate_limited", "too many requests; retry in %d s", retry), retry)
}

// evictLocked makes room: callers idle for a minute go first (their buckets are
// full again anyway); if that frees nothing, a random tenth goes (map order).
func (rl *rateLimiter) evictLocked() {
	idle := rl.now().Add(-time.Minute)
	for k, e := range rl.keys {
		if e.seen.Before(idle) {
			delete(rl.keys, k)
		}
	}
	for k := range rl.keys {
		if len(rl.keys) < rl.cfg.MaxKeys*9/10 {
			break
		}
		delete(rl.keys, k)
	}
}

// RetryLater marks e as an answer that is not final: the client should
// retry the same request after seconds. The problem carries
// retry_after_seconds and a Retry-After header, and an Idempotency-Key is
// released rather than settled with it, so the retry runs again.
func RetryLater(e *errs.Error, seconds int) *errs.Error {
	return e.With("retry_after_seconds", max(seconds, 1))
}

// retryAfter is the Retry-After value of err ("" when it has none).
func retryAfter(err error) string {
	if e, ok := errs.As(err); ok {
		if v, ok := e.Details["retry_after_seconds"].(int); ok {
			return strconv.Itoa(v)
		}
	}
	return ""
}
