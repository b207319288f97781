package idempotency

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// ErrClaimLost is returned by Held.Complete and Held.Release when the claim is
// no longer this holder's: its lease ran out (renewals failed) and a retry
// took it over. The retry's answer is the one stored.
var ErrClaimLost = errors.New("idempotency: claim lost to another holder")

// Held is a claim this process owns (Outcome.Owned), kept alive while its
// request runs: a heartbeat renews its lease every third of the lease, so the
// claim of a live request never expires, and the claim of a request whose
// process died expires within one lease and is taken over by the retry.
// Renewing, completing and releasing are conditional on the claim's token.
type Held struct {
	s               *Store
	owner, key, tok string
	onLost          func()
	lost            atomic.Bool
	stop            chan struct{}
	done            chan struct{}
	once            sync.Once
}

// Hold starts renewing the claim (owner, key) that out owns. onLost, if not
// nil, is called once when a renewal finds the claim taken over (or its lease
// run out without a successful renewal): the request should stop before its
// next effect. Call Stop when the request has answered.
func (s *Store) Hold(owner, key string, out Outcome, onLost func()) *Held {
	h := &Held{s: s, owner: owner, key: key, tok: out.Token, onLost: onLost, stop: make(chan struct{}), done: make(chan struct{})}
	go h.heartbeat()
	return h
}

func (h *Held) heartbeat() {
	defer close(h.done)
	every := h.s.lease / 3
	until := h.s.now().Add(h.s.lease)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		next, err := h.renew(ctx)
		cancel()
		switch {
		case errors.Is(err, ErrClaimLost) || (err != nil && !h.s.now().Before(until)):
			h.markLost()
			return
		case err == nil:
			until = next
		}
	}
}

// renew extends the claim's lease if the row still carries this holder's token.
func (h *Held) renew(ctx context.Context) (time.Time, error) {
	next := h.s.now().Add(h.s.lease)
	err := h.s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET claimed_until = $4
			WHERE owner = $1 AND key = $2 AND claim_token = $3 AND state = 'pending'`, h.owner, h.key, h.tok, db.Micros(next))
		if err != nil {
			return fmt.Errorf("idempotency: renew claim: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrClaimLost
		}
		return nil
	})
	return next, err
}

func (h *Held) markLost() {
	if h.lost.CompareAndSwap(false, true) && h.onLost != nil {
		h.onLost()
	}
}

// Lost reports whether the claim was found taken over.
func (h *Held) Lost() bool { return h.lost.Load() }

// Stop ends the heartbeat and waits for a renewal under way to finish.
func (h *Held) Stop() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// Complete stops the heartbeat and stores the response, if the claim is still
// this holder's; otherwise it returns ErrClaimLost and stores nothing.
func (h *Held) Complete(ctx context.Context, r Response) error {
	h.Stop()
	return h.s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET state = 'done', status_code = $4, content_type = $5, body = $6
			WHERE owner = $1 AND key = $2 AND claim_token = $3 AND state = 'pending'`, h.owner, h.key, h.tok, r.StatusCode, r.ContentType, r.Body)
		if err != nil {
			return fmt.Errorf("idempotency: complete: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrClaimLost
		}
		return nil
	})
}

// Release stops the heartbeat and drops the claim, if it is still this
// holder's, so that the next attempt runs afresh.
func (h *Held) Release(ctx context.Context) error {
	h.Stop()
	return h.s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND claim_token = $3 AND state = 'pending'`,
			h.owner, h.key, h.tok)
		if err != nil {
			return fmt.Errorf("idempotency: release: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrClaimLost
		}
		return nil
	})
}
