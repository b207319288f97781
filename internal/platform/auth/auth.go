// Package auth mints and verifies Godwit's bearer tokens and decides who may call
// what. A token is an HMAC-signed JWT carrying one scope: admin (program
// management), service (trusted systems posting activity for any member) or
// member (one member, their own data only).
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Scope is what a token may do.
type Scope string

// The scopes.
const (
	ScopeAdmin   Scope = "admin"
	ScopeService Scope = "service"
	ScopeMember  Scope = "member"
)

// ParseScope validates a scope name.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeAdmin, ScopeService, ScopeMember:
		return Scope(s), nil
	}
	return "", fmt.Errorf("auth: unknown scope %q (want admin, service or member)", s)
}

// Principal is the authenticated caller.
type Principal struct {
	Scope   Scope
	Subject string // member id for member tokens; a name for admin and service tokens
	TokenID string
	Expires time.Time
}

// Actor is how the ledger records who did something: "scope:subject".
func (p *Principal) Actor() string {
	if p == nil {
		return "anonymous"
	}
	return string(p.Scope) + ":" + p.Subject
}

// IsMember reports whether p acts for exactly member id.
func (p *Principal) IsMember(id string) bool {
	return p != nil && p.Scope == ScopeMember && p.Subject == id
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, or nil for an anonymous request.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// MinSecretLen is the shortest accepted signing secret, in bytes.
const MinSecretLen = 32

// Keys signs and verifies tokens with one HMAC secret.
type Keys struct {
	secret []byte
	now    func() time.Time
}

// NewKeys returns Keys for secret, which must be at least MinSecretLen bytes.
// now may be nil (time.Now).
func NewKeys(secret []byte, now func() time.Time) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	defaults.Fill(defaults.Fields{Now: &now})
	return &Keys{secret: append([]byte(nil), secret...), now: now}, nil
}

type claims struct {
	Scope Scope `json:"scope"`
	jwt.RegisteredClaims
}

const issuer = "godwit"

// Mint returns a signed token for subject with scope, valid for ttl.
func (k *Keys) Mint(scope Scope, subject string, ttl time.Duration) (string, error) {
	if _, err := ParseScope(string(scope)); err != nil {
		return "", err
	}
	return k.mint(scope, subject, ttl)
}

func (k *Keys) mint(scope Scope, subject string, ttl time.Duration) (string, error) {
	if subject == "" {
		return "", errors.New("auth: empty subject")
	}
	if ttl <= 0 {
		return "", errors.New("auth: ttl must be positive")
	}
	now := k.now()
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("auth: token id: %w", err)
	}
	c := claims{
		Scope: scope,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        hex.EncodeToString(id),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}

// Error codes of Verify and Authenticate that callers compare against.
const (
	CodeInvalidToken = "invalid_token" // not a token this server signed, or malformed
	CodeTokenExpired = "token_expired" // signed here, but past its expiry
)

// Verify checks a token's signature, algorithm, issuer and lifetime and returns
// its principal. Every failure is an errs.Unauthorized error that does not echo
// the token.
func (k *Keys) Verify(token string) (*Principal, error) {
	p, err := k.verify(token)
	if err != nil {
		return nil, err
	}
	if _, err := ParseScope(string(p.Scope)); err != nil {
		return nil, errs.Coded(errs.Unauthorized, CodeInvalidToken, "the bearer token has no valid scope or subject")
	}
	return p, nil
}

// verify checks everything Verify does except that the scope is a bearer scope.
func (k *Keys) verify(token string) (*Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return k.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(k.now),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errs.Coded(errs.Unauthorized, CodeTokenExpired, "the bearer token has expired")
		}
		return nil, errs.Coded(errs.Unauthorized, CodeInvalidToken, "the bearer token is not valid").Wrap(err)
	}
	if c.Scope == "" || c.Subject == "" {
		return nil, errs.Coded(errs.Unauthorized, CodeInvalidToken, "the bearer token has no valid scope or subject")
	}
	return &Principal{Scope: c.Scope, Subject: c.Subject, TokenID: c.ID, Expires: c.ExpiresAt.Time}, nil
}

// Authenticate reads the Authorization header value. An empty header yields a
// nil principal and no error (the route's policy decides whether that is allowed).
func (k *Keys) Authenticate(header string) (*Principal, error) {
	if header == "" {
		return nil, nil
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, errs.Coded(errs.Unauthorized, CodeInvalidToken, "the Authorization header must be 'Bearer <token>'")
	}
	return k.Verify(strings.TrimSpace(token))
}

// LoadOrCreateSecret returns the secret stored hex-encoded in path, creating the
// file (mode 0600) with 32 random bytes when it does not exist. created reports
// whether it was created now.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, false, fmt.Errorf("auth: secret file %s is not hex: %w", path, err)
		}
		if len(s) < MinSecretLen {
			return nil, false, fmt.Errorf("auth: secret file %s holds %d bytes, need %d", path, len(s), MinSecretLen)
		}
		return s, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("auth: read secret: %w", err)
	}
	s := make([]byte, MinSecretLen)
	if _, err := rand.Read(s); err != nil {
		return nil, false, fmt.Errorf("auth: generate secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, false, fmt.Errorf("auth: create secret dir: %w", err)
	}
	// Write a temporary file, then hard-link it into place: the link either
	// publishes a complete file or fails because another process won the race,
	// in which case its (complete) secret is the one to use.
	f, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, false, fmt.Errorf("auth: create secret: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("auth: create secret: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(s) + "\n"); err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("auth: write secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("auth: write secret: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateSecret(path)
		}
		return nil, false, fmt.Errorf("auth: publish secret: %w", err)
	}
	return s, true, nil
}

// DecodeSecret accepts a secret given on the command line or in the environment:
// hex when it decodes as hex of at least MinSecretLen bytes, otherwise the raw bytes.
func DecodeSecret(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) >= MinSecretLen {
		return b, nil
	}
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("auth: secret must be at least %d bytes", MinSecretLen)
	}
	return []byte(s), nil
}
