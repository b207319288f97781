// Package idempotency stores Idempotency-Key records so that a request retried
// with the same key runs its effect once and replays the first response. The
// record lives in the database, so every replica sees the same claims.
package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Response is a stored response, replayed verbatim.
type Response struct {
	StatusCode  int
	ContentType string
	Body        []byte
}

// Outcome is the result of Claim.
type Outcome struct {
	// Owned: the caller holds the claim and must run the request, then Complete or Release.
	Owned bool
	// Replay holds the stored response when the key has already completed.
	Replay *Response
	// InProgress: another request holds the claim right now.
	InProgress bool
	// Token names this holder of an Owned claim: Hold renews, completes and
	// releases the claim only while the row still carries it.
	Token string
}

// Store keeps idempotency records.
type Store struct {
	db    *db.DB
	now   func() time.Time
	lease time.Duration
	poll  time.Duration
}

// Options tune a Store.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Lease is how long a claim protects a running request past its last
	// renewal: Hold renews it every third of the lease while the request runs,
	// so a claim whose lease ran out belongs to a request whose process died,
	// and a retry takes it over. Default DefaultLease.
	Lease time.Duration
	// Poll is the first interval between checks while waiting on a claim held elsewhere.
	Poll time.Duration
}

// DefaultLease is the claim lease when Options.Lease is zero: a crashed
// request's key is free for its retry at most this long after the crash.
const DefaultLease = 6 * time.Second

// NewStore returns a Store on d.
func NewStore(d *db.DB, opts Options) *Store {
	defaults.Fill(defaults.Fields{Now: &opts.Now})
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Millisecond
	}
	return &Store{db: d, now: opts.Now, lease: opts.Lease, poll: opts.Poll}
}

// ErrKeyReused is returned when a key is sent again with a different request.
var ErrKeyReused = errs.Coded(errs.Unprocessable, "idempotency_key_reused",
	"this Idempotency-Key was already used with a different request")

// ValidateKey checks a client-supplied key: 1–255 visible ASCII characters.
func ValidateKey(key string) error {
	if key == "" || len(key) > 255 {
		return errs.Coded(errs.Invalid, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return errs.Coded(errs.Invalid, "invalid_idempotency_key", "Idempotency-Key must be visible ASCII without spaces")
		}
	}
	return nil
}

// Claim tries to take (owner, key) for a request whose fingerprint is hash.
func (s *Store) Claim(ctx context.Context, owner, key, hash string) (Outcome, error) {
	var out Outcome
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		out, err = s.claimTx(ctx, tx, owner, key, hash)
		return err
	})
	return out, err
}

// claimTx is Claim inside tx.
func (s *Store) claimTx(ctx context.Context, tx *db.Tx, owner, key, hash string) (Outcome, error) {
	var out Outcome
	now := s.now()
	token := uuid.NewString()
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, state, created_at, claimed_until, claim_token)
		VALUES ($1, $2, $3, 'pending', $4, $5, $6) ON CONFLICT (owner, key) DO NOTHING`,
		owner, key, hash, db.Micros(now), db.Micros(now.Add(s.lease)), token)
	if err != nil {
		return out, fmt.Errorf("idempotency: claim: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		out.Owned, out.Token = true, token
		return out, nil
	}
	var (
		storedHash, state string
		status            int
		contentType       string
		body              []byte
		claimedUntil      int64
	)
	err = tx.QueryRowContext(ctx, `SELECT request_hash, state, status_code, content_type, body, claimed_until
		FROM idempotency_keys WHERE owner = $1 AND key = $2`+tx.ForUpdate(), owner, key).
		Scan(&storedHash, &state, &status, &contentType, &body, &claimedUntil)
	if err != nil {
		return out, fmt.Errorf("idempotency: read claim: %w", err)
	}
	if storedHash != hash {
		return out, ErrKeyReused
	}
	if state == "done" {
		out.Replay = &Response{StatusCode: status, ContentType: contentType, Body: body}
		return out, nil
	}
	if claimedUntil > db.Micros(now) {
		out.InProgress = true
		return out, nil
	}
	// The claim's lease ran out: its process died mid-request (a live one
	// renews it). Take it over under a new token, which fences the old holder
	// out: its renewals and its answer no longer match the row. The row is
	// locked (FOR UPDATE; SQLite has one writer), and the update is
	// conditional besides, so two retries never both take it.
	res, err = tx.ExecContext(ctx, `UPDATE idempotency_keys SET claimed_until = $3, claim_token = $4
		WHERE owner = $1 AND key = $2 AND state = 'pending' AND claimed_until <= $5`,
		owner, key, db.Micros(now.Add(s.lease)), token, db.Micros(now))
	if err != nil {
		return out, fmt.Errorf("idempotency: take over claim: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		out.InProgress = true
		return out, nil
	}
	out.Owned, out.Token = true, token
	return out, nil
}

// Complete stores the response for a claim the caller owns.
func (s *Store) Complete(ctx context.Context, owner, key string, r Response) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		return completeTx(ctx, tx, owner, key, r)
	})
}

func completeTx(ctx context.Context, tx *db.Tx, owner, key string, r Response) error {
	_, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET state = 'done', status_code = $3, content_type = $4, body = $5
		WHERE owner = $1 AND key = $2`, owner, key, r.StatusCode, r.ContentType, r.Body)
	if err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	return nil
}

// Atomically runs a request whose whole effect is one database transaction in
// that same transaction with its claim and its stored response: one commit
// instead of three (claim, effect, response). run gets a context under which
// db.InTx joins the transaction (see db.Join). When the key has completed
// before, run is not called and the Outcome carries the Replay; when another
// request holds a claim on it, the Outcome says InProgress. Otherwise run's
// response is stored and committed with its effect — unless run returns an
// error, which rolls everything back, the claim included (a retryable one runs
// run again on a fresh transaction). If a joined call failed but run still
// answered (a 4xx from a failed write), the transaction is rolled back and the
// answer stored on its own, so a retry replays it. A concurrent duplicate on
// PostgreSQL waits on the claim row's uniqueness until this transaction ends,
// then replays its response.
func (s *Store) Atomically(ctx context.Context, owner, key, hash string, run func(ctx context.Context) (Response, error)) (Outcome, error) {
	var out Outcome
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		if out, err = s.claimTx(ctx, tx, owner, key, hash); err != nil || !out.Owned {
			return err
		}
		resp, err := run(db.Join(ctx, tx))
		if err != nil {
			return err
		}
		if tx.JoinFailed() {
			return &answerAlone{resp}
		}
		return completeTx(ctx, tx, owner, key, resp)
	})
	var alone *answerAlone
	if !errors.As(err, &alone) {
		return out, err
	}
	// The effect rolled back; keep the answer, in a transaction of its own.
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		if out, err = s.claimTx(ctx, tx, owner, key, hash); err != nil || !out.Owned {
			return err
		}
		return completeTx(ctx, tx, owner, key, alone.resp)
	})
	return out, err
}

// answerAlone rolls back a request whose joined write failed but which still
// answered, carrying that answer out to be stored by itself.
type answerAlone struct{ resp Response }

func (*answerAlone) Error() string {
	return "idempotency: request failed after writing; storing its answer alone"
}

// Release drops a claim whose request failed in a way worth retrying (a 5xx or a
// panic), so the next attempt with the same key runs afresh.
func (s *Store) Release(ctx context.Context, owner, key string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND state = 'pending'`, owner, key)
		if err != nil {
			return fmt.Errorf("idempotency: release: %w", err)
		}
		return nil
	})
}

// Await claims the key, waiting while another request holds it, until the
// claim is owned, a response can be replayed, or ctx ends.
func (s *Store) Await(ctx context.Context, owner, key, hash string) (Outcome, error) {
	wait := s.poll
	for {
		out, err := s.Claim(ctx, owner, key, hash)
		if err != nil || !out.InProgress {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 250*time.Millisecond)
	}
}

// Purge deletes every record PurgeBatch would, in batches, and reports how
// many went.
func (s *Store) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.PurgeBatch(ctx, cutoff, purgeBatch)
		total += int64(n)
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}

const purgeBatch = 500

// PurgeBatch deletes up to limit records created before cutoff and reports
// how many went: one batch of the retention job. A completed record goes;
// a pending one only once its claim ran out before cutoff too (its process
// died long ago; a retry could already have taken it over), so a key still
// in progress is never deleted. The conditions are repeated on the deleted
// rows themselves, so a record completed or taken over while the batch
// waits for its row lock is rechecked; replicas purging at once delete each
// record once.
func (s *Store) PurgeBatch(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	var n int64
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE `+purgeable+` AND (owner, key) IN (
			SELECT owner, key FROM idempotency_keys WHERE `+purgeable+` ORDER BY created_at LIMIT $2)`, db.Micros(cutoff), limit)
		if err != nil {
			return fmt.Errorf("idempotency: purge: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// purgeable is a record past retention at cutoff $1 (created_at leads, for
// the idempotency_keys_created index).
const purgeable = `created_at < $1 AND (state = 'done' OR claimed_until < $1)`
