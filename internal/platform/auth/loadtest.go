package auth

import (
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
)

// LoadTestPassHeader is the request header that carries a load-test pass.
const LoadTestPassHeader = "Godwit-Load-Test-Pass"

// scopeLoadTest marks a load-test pass. It is deliberately not a bearer scope
// (ParseScope rejects it), so a pass sent as a bearer token is refused: a pass
// grants no access to anything, it only exempts the requests that carry it from
// the per-caller rate limits.
const scopeLoadTest Scope = "load-test"

// MintLoadTestPass returns a load-test pass for subject (who runs the test,
// e.g. "loadgen"), valid for ttl. Minting one needs the signing secret — the
// same secret that mints admin tokens — so a pass gives its holder nothing an
// admin could not already do (admin and service tokens are not rate-limited by
// default, and an admin can restart a server without limits). Requests carrying
// a valid pass in LoadTestPassHeader skip the rate limits; they keep their own
// bearer token (or none), so a guest stays a guest and a member a member.
func (k *Keys) MintLoadTestPass(subject string, ttl time.Duration) (string, error) {
	return k.mint(scopeLoadTest, subject, ttl)
}

// VerifyLoadTestPass checks a load-test pass like Verify checks a token and
// returns its principal (scope "load-test"; the subject names who minted it).
// A bearer token is not a pass.
func (k *Keys) VerifyLoadTestPass(pass string) (*Principal, error) {
	p, err := k.verify(pass)
	if err != nil {
		if errs.Is(err, CodeTokenExpired) {
			return nil, errs.Coded(errs.Unauthorized, "load_test_pass_expired", "the %s has expired", LoadTestPassHeader)
		}
		return nil, errs.Coded(errs.Unauthorized, "invalid_load_test_pass", "the %s is not valid", LoadTestPassHeader)
	}
	if p.Scope != scopeLoadTest {
		return nil, errs.Coded(errs.Unauthorized, "invalid_load_test_pass", "the %s is not a load-test pass", LoadTestPassHeader)
	}
	return p, nil
}
