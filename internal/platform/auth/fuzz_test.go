package auth_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

var (
	fuzzSecret = []byte("fuzz-secret-fuzz-secret-fuzz-sec")
	fuzzNow    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func fuzzKeys(tb testing.TB, now time.Time) *auth.Keys {
	tb.Helper()
	k, err := auth.NewKeys(fuzzSecret, func() time.Time { return now })
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// signed builds a token with arbitrary claims and algorithm, for seeds that a
// correct verifier must refuse.
func signed(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzAuthenticate feeds arbitrary Authorization header values to
// Keys.Authenticate. It must never panic; a refusal is always 401-class and
// never echoes the token; an acceptance only comes from a token this secret
// signed, with a known scope, a subject and an unexpired lifetime.
func FuzzAuthenticate(f *testing.F) {
	k := fuzzKeys(f, fuzzNow)
	good, _ := k.Mint(auth.ScopeMember, "m-1", time.Hour)
	admin, _ := k.Mint(auth.ScopeAdmin, "ops", time.Minute)
	expired, _ := fuzzKeys(f, fuzzNow.Add(-2*time.Hour)).Mint(auth.ScopeAdmin, "ops", time.Hour)
	base := jwt.MapClaims{"iss": "godwit", "sub": "m-1", "scope": "member", "exp": fuzzNow.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range base {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	seeds := []string{
		"", "Bearer", "Bearer ", "Bearer  ", "Basic dXNlcjpwYXNz", "bearer " + good, "Bearer " + good, "BEARER  " + good + "  ",
		"Bearer " + admin, "Bearer " + expired, "Bearer " + good + "x", "Bearer " + strings.Replace(good, ".", "..", 1),
		"Bearer " + signed(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base),
		"Bearer " + signed(f, jwt.SigningMethodHS512, fuzzSecret, base),
		"Bearer " + signed(f, jwt.SigningMethodHS256, fuzzSecret, with("scope", "root")),
		"Bearer " + signed(f, jwt.SigningMethodHS256, fuzzSecret, with("sub", "")),
		"Bearer " + signed(f, jwt.SigningMethodHS256, fuzzSecret, with("iss", "evil")),
		"Bearer " + signed(f, jwt.SigningMethodHS256, fuzzSecret, with("exp", nil)),
		"Bearer " + signed(f, jwt.SigningMethodHS256, fuzzSecret, with("scope", 7)),
		"Bearer " + signed(f, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), base),
		"Bearer eyJ.eyJ.", "Bearer a.b.c", "Bearer \x00\xff",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := k.Authenticate(header)
		if err != nil {
			if p != nil {
				t.Fatal("a principal with an error")
			}
			if errs.KindOf(err) != errs.Unauthorized {
				t.Fatalf("Authenticate(%q): kind %s, want unauthorized", header, errs.KindOf(err))
			}
			_, tok, _ := strings.Cut(header, " ")
			if tok = strings.TrimSpace(tok); len(tok) >= 8 && strings.Contains(err.Error(), tok) {
				t.Fatalf("the error echoes the token: %v", err)
			}
			return
		}
		if header == "" {
			if p != nil {
				t.Fatal("a principal for an empty header")
			}
			return
		}
		if p == nil {
			t.Fatalf("Authenticate(%q): no principal and no error", header)
		}
		if _, err := auth.ParseScope(string(p.Scope)); err != nil || p.Subject == "" {
			t.Fatalf("accepted a principal without scope or subject: %+v", p)
		}
		if !p.Expires.After(fuzzNow) {
			t.Fatalf("accepted an expired token: %+v", p)
		}
		// Only this secret's signatures pass: another key refuses the same header.
		other, _ := auth.NewKeys([]byte("another-secret-another-secret-xx"), func() time.Time { return fuzzNow })
		if _, err := other.Authenticate(header); err == nil {
			t.Fatalf("a token accepted under two secrets: %q", header)
		}
	})
}

// FuzzMintVerify round-trips minted tokens: whatever subject is minted comes back.
func FuzzMintVerify(f *testing.F) {
	f.Add("member", "m-1", int64(60))
	f.Add("admin", "ops team", int64(1))
	f.Add("service", "\x00é\"}", int64(3600))
	f.Add("root", "x", int64(60))
	k := fuzzKeys(f, fuzzNow)
	f.Fuzz(func(t *testing.T, scope, subject string, ttlSeconds int64) {
		if !utf8.ValidString(subject) || ttlSeconds > 10*365*24*3600 {
			return // JSON cannot carry invalid UTF-8; lifetimes are hours, not decades
		}
		tok, err := k.Mint(auth.Scope(scope), subject, time.Duration(ttlSeconds)*time.Second)
		if err != nil {
			return
		}
		p, err := k.Verify(tok)
		if err != nil {
			t.Fatalf("a freshly minted token (%q, %q, %ds) does not verify: %v", scope, subject, ttlSeconds, err)
		}
		if string(p.Scope) != scope || p.Subject != subject {
			t.Fatalf("round trip: got %s/%q, minted %s/%q", p.Scope, p.Subject, scope, subject)
		}
	})
}
