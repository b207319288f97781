package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestMintVerifyRoundTrip(t *testing.T) {
	k, err := auth.NewKeys(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Mint(auth.ScopeMember, "m-42", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Scope != auth.ScopeMember || p.Subject != "m-42" || p.TokenID == "" || !p.IsMember("m-42") || p.IsMember("m-43") {
		t.Fatalf("principal = %+v", p)
	}
	if p.Actor() != "member:m-42" {
		t.Fatalf("actor = %q", p.Actor())
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	k, _ := auth.NewKeys(secret, clock)
	good, _ := k.Mint(auth.ScopeAdmin, "ops", time.Hour)

	// A token signed with "none" or another algorithm must never pass.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"scope": "admin", "sub": "x", "iss": "godwit", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noScope, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x", "iss": "godwit", "exp": now.Add(time.Hour).Unix()}).SignedString(secret)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"scope": "admin", "sub": "x", "iss": "godwit"}).SignedString(secret)
	otherIssuer, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"scope": "admin", "sub": "x", "iss": "evil", "exp": now.Add(time.Hour).Unix()}).SignedString(secret)
	later, _ := auth.NewKeys(secret, func() time.Time { return now.Add(2 * time.Hour) })

	tests := map[string]struct {
		keys  *auth.Keys
		token string
		code  string
	}{
		"tampered":     {k, good[:len(good)-2] + "xx", "invalid_token"},
		"alg none":     {k, none, "invalid_token"},
		"no scope":     {k, noScope, "invalid_token"},
		"no expiry":    {k, noExp, "invalid_token"},
		"other issuer": {k, otherIssuer, "invalid_token"},
		"expired":      {later, good, "token_expired"},
		"garbage":      {k, "abc", "invalid_token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := tc.keys.Verify(tc.token)
			if errs.KindOf(err) != errs.Unauthorized || errs.CodeOf(err) != tc.code {
				t.Fatalf("err = %v (code %s), want %s", err, errs.CodeOf(err), tc.code)
			}
			if strings.Contains(err.Error(), tc.token) && tc.token != "abc" {
				t.Fatal("error echoes the token")
			}
		})
	}
	for _, h := range []string{"Basic abc", "Bearer", "Bearer ", "token"} {
		if _, err := k.Authenticate(h); errs.KindOf(err) != errs.Unauthorized {
			t.Errorf("Authenticate(%q) = %v", h, err)
		}
	}
	if p, err := k.Authenticate(""); p != nil || err != nil {
		t.Errorf("empty header = %v, %v; want anonymous", p, err)
	}
}

func TestSecretRules(t *testing.T) {
	if _, err := auth.NewKeys([]byte("short"), nil); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := auth.DecodeSecret("too-short"); err == nil {
		t.Fatal("short flag secret accepted")
	}
	hexSecret := strings.Repeat("ab", 32)
	if b, err := auth.DecodeSecret(hexSecret); err != nil || len(b) != 32 {
		t.Fatalf("hex secret: %v %d", err, len(b))
	}
}

func TestLoadOrCreateSecretOnceUnderRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "secret")
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	created := make([]bool, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, c, err := auth.LoadOrCreateSecret(path)
			if err != nil {
				t.Error(err)
			}
			got[i], created[i] = s, c
		}()
	}
	wg.Wait()
	n := 0
	for i := range got {
		if string(got[i]) != string(got[0]) {
			t.Fatal("processes starting together got different secrets")
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("secret created %d times, want 1", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
