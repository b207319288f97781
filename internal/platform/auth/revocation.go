package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Revocations records revoked tokens in the database, which every replica
// reads on each authenticated request: a revoked token is refused at once
// everywhere, without waiting for it to expire.
type Revocations struct {
	db  *db.DB
	now func() time.Time
}

// NewRevocations returns the revocation store on d; now may be nil (time.Now).
func NewRevocations(d *db.DB, now func() time.Time) *Revocations {
	if now == nil {
		now = time.Now
	}
	return &Revocations{db: d, now: now}
}

// IsRevoked reports whether the token with id tokenID has been revoked.
func (r *Revocations) IsRevoked(ctx context.Context, tokenID string) (bool, error) {
	var one int
	err := r.db.Read().QueryRowContext(ctx, `SELECT 1 FROM revoked_tokens WHERE token_id = $1`, tokenID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, errs.Coded(errs.Unavailable, "auth_unavailable", "cannot check the token right now; retry").Wrap(fmt.Errorf("auth: revocation check: %w", err))
	}
	return true, nil
}

// Revoke records p's token as revoked by actor. Revoking twice is a no-op.
func (r *Revocations) Revoke(ctx context.Context, p *Principal, actor string) error {
	return r.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (token_id, subject, revoked_by, revoked_at, expires_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id) DO NOTHING`,
			p.TokenID, string(p.Scope)+":"+p.Subject, actor, db.Micros(r.now()), db.Micros(p.Expires))
		if err != nil {
			return fmt.Errorf("auth: revoke: %w", err)
		}
		return nil
	})
}
