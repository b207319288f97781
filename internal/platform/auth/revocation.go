package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// RevocationChannel is the PostgreSQL notification channel a trigger on
// revoked_tokens notifies on every insert (migration 00048).
const RevocationChannel = "godwit_revocations"

// Revocations records revoked tokens in the database and answers "is this
// token revoked?" from memory. Checking the table on every authenticated
// request was a round trip per request (about 9% of the server's CPU on
// PostgreSQL); revoked tokens are few, so each replica keeps them all.
//
// Freshness: a revocation made through this instance counts before Revoke
// returns. One made anywhere else — another replica, `godwit` run against the
// same database, a hand-written INSERT — is picked up by a poll every
// RevocationOptions.Poll (default 250 ms) and, on PostgreSQL, at once by
// LISTEN on RevocationChannel. So while the database is reachable a revoked
// token is refused everywhere within about Poll plus one query.
//
// Failure: when refreshing keeps failing, the set goes stale. Up to MaxStale
// (default 5 s) requests are still answered from the last known set — a
// database blip must not refuse every caller — and every failure is logged and
// counted. Past MaxStale IsRevoked fails closed with 503 auth_unavailable (as
// the per-request lookup did when the database was down): a stale set could
// let a token revoked in the meantime through. Healthy reports the same state
// for readiness checks.
//
// Entries are dropped from memory once their token has expired (an expired
// token is refused anyway). Un-revoking (deleting a row) is not supported: a
// replica forgets a revocation only when the token expires or it restarts.
type Revocations struct {
	db   *db.DB
	now  func() time.Time
	opts RevocationOptions

	// set is the revoked token ids with their expiry (Unix µs), replaced
	// whole on change so IsRevoked reads it without a lock.
	set atomic.Pointer[map[string]int64]
	// lastOK is when a refresh last succeeded (time.Now, Unix ns; the
	// injected clock may stand still in tests, staleness must not).
	lastOK atomic.Int64

	mu       sync.Mutex // serialises changes to set, maxSeen and failures
	maxSeen  int64      // highest revoked_at read so far
	failures int        // consecutive failed refreshes
	lastFull time.Time

	wake   chan struct{}
	stop   context.CancelFunc
	done   sync.WaitGroup
	failed metric.Int64Counter
}

// RevocationOptions tune OpenRevocations. The zero value is usable.
type RevocationOptions struct {
	// Now is the clock expiry is judged by (default time.Now).
	Now func() time.Time
	// ListenDSN is the PostgreSQL DSN to LISTEN on (a dedicated connection);
	// empty on SQLite, or to rely on the poll alone.
	ListenDSN string
	// Poll is how often the table is read for new revocations (default 250 ms).
	Poll time.Duration
	// MaxStale is how long IsRevoked keeps answering from memory while every
	// refresh fails, before it refuses with 503 (default 5 s).
	MaxStale time.Duration
	// Logger receives refresh failures (default: discarded).
	Logger *slog.Logger
	// MeterProvider provides the godwit.auth.revocation.* metrics (default: none).
	MeterProvider metric.MeterProvider
}

// lookback is how far before the newest revocation seen each poll reads again:
// rows commit out of revoked_at order (another process's clock, a slow
// commit), and reading a minute again costs little because rows are few.
const lookback = time.Minute

// fullEvery is how often a poll reads every unexpired row, catching a row whose
// revoked_at lagged more than lookback behind (a replica with a skewed clock).
const fullEvery = 30 * time.Second

// OpenRevocations loads every unexpired revocation from d — the server must
// not answer a request before it knows them — and keeps the set fresh in the
// background until Close.
func OpenRevocations(ctx context.Context, d *db.DB, o RevocationOptions) (*Revocations, error) {
	defaults.Fill(defaults.Fields{Now: &o.Now, Logger: &o.Logger, Meter: &o.MeterProvider})
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.MaxStale <= 0 {
		o.MaxStale = 5 * time.Second
	}
	r := &Revocations{db: d, now: o.Now, opts: o, wake: make(chan struct{}, 1)}
	empty := map[string]int64{}
	r.set.Store(&empty)
	if err := r.metrics(); err != nil {
		return nil, err
	}
	if err := r.refresh(ctx, true); err != nil {
		return nil, fmt.Errorf("auth: load revoked tokens: %w", err)
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	r.done.Go(func() { r.pollLoop(loopCtx) })
	if o.ListenDSN != "" {
		r.done.Go(func() { r.listenLoop(loopCtx) })
	}
	return r, nil
}

func (r *Revocations) metrics() error {
	m := r.opts.MeterProvider.Meter("github.com/godwit-dev/godwit/internal/platform/auth")
	var err error
	if r.failed, err = m.Int64Counter("godwit.auth.revocation.refresh_failures",
		metric.WithDescription("failed refreshes of the in-memory revoked-token set")); err != nil {
		return err
	}
	_, err = m.Float64ObservableGauge("godwit.auth.revocation.staleness", metric.WithUnit("s"),
		metric.WithDescription("time since the revoked-token set was last refreshed from the database"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(r.staleness().Seconds())
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("godwit.auth.revocation.tokens",
		metric.WithDescription("unexpired revoked tokens held in memory"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(len(*r.set.Load())))
			return nil
		}))
	return err
}

// Close stops the background refresh. IsRevoked keeps answering from the last
// set (and turns stale after MaxStale).
func (r *Revocations) Close() error {
	if r.stop != nil {
		r.stop()
		r.done.Wait()
	}
	return nil
}

// IsRevoked reports whether the token with id tokenID has been revoked. It
// reads memory only; it fails with 503 auth_unavailable when the set could not
// be refreshed for longer than MaxStale.
func (r *Revocations) IsRevoked(_ context.Context, tokenID string) (bool, error) {
	if err := r.Healthy(); err != nil {
		return false, err
	}
	_, revoked := (*r.set.Load())[tokenID]
	return revoked, nil
}

// Healthy returns nil while the revoked set is fresh enough to answer from,
// else the 503 error IsRevoked returns.
func (r *Revocations) Healthy() error {
	if s := r.staleness(); s > r.opts.MaxStale {
		return errs.Coded(errs.Unavailable, "auth_unavailable", "cannot check the token right now; retry").
			Wrap(fmt.Errorf("auth: revoked-token set not refreshed for %s", s.Round(time.Millisecond)))
	}
	return nil
}

func (r *Revocations) staleness() time.Duration {
	return time.Duration(time.Now().UnixNano() - r.lastOK.Load())
}

// Revoke records p's token as revoked by actor. Revoking twice is a no-op. The
// token is refused by this instance before Revoke returns.
func (r *Revocations) Revoke(ctx context.Context, p *Principal, actor string) error {
	now := db.Micros(r.now())
	err := r.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (token_id, subject, revoked_by, revoked_at, expires_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id) DO NOTHING`,
			p.TokenID, string(p.Scope)+":"+p.Subject, actor, now, db.Micros(p.Expires))
		if err != nil {
			return fmt.Errorf("auth: revoke: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.mergeLocked([]revokedRow{{id: p.TokenID, expires: db.Micros(p.Expires)}})
	r.mu.Unlock()
	return nil
}

type revokedRow struct {
	id      string
	expires int64
}

// refresh reads new revocations (full: every unexpired one) into the set.
func (r *Revocations) refresh(parent context.Context, full bool) error {
	ctx, cancel := context.WithTimeout(parent, max(2*time.Second, r.opts.Poll))
	defer cancel()
	now := db.Micros(r.now())
	r.mu.Lock()
	since := r.maxSeen - lookback.Microseconds()
	if full || r.maxSeen == 0 {
		since = -1 << 62
	}
	r.mu.Unlock()
	rows, err := r.db.Read().QueryContext(ctx,
		`SELECT token_id, expires_at, revoked_at FROM revoked_tokens WHERE revoked_at > $1 AND expires_at > $2`, since, now)
	if err != nil {
		return r.failedRefresh(parent, fmt.Errorf("auth: refresh revoked tokens: %w", err))
	}
	defer rows.Close()
	var (
		got     []revokedRow
		newest  int64
		revoked int64
	)
	for rows.Next() {
		var row revokedRow
		if err := rows.Scan(&row.id, &row.expires, &revoked); err != nil {
			return r.failedRefresh(parent, fmt.Errorf("auth: refresh revoked tokens: %w", err))
		}
		got = append(got, row)
		newest = max(newest, revoked)
	}
	if err := rows.Err(); err != nil {
		return r.failedRefresh(parent, fmt.Errorf("auth: refresh revoked tokens: %w", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxSeen = max(r.maxSeen, newest)
	r.mergeLocked(got)
	if full {
		r.lastFull = time.Now()
	}
	if r.failures > 0 {
		r.opts.Logger.Info("auth: revoked-token set refreshed again", "failed_refreshes", r.failures)
	}
	r.failures = 0
	r.lastOK.Store(time.Now().UnixNano())
	return nil
}

func (r *Revocations) failedRefresh(parent context.Context, err error) error {
	if parent.Err() != nil {
		// Stopping (shutdown) cancelled the read: not a failure to count or warn of.
		return err
	}
	r.failed.Add(context.Background(), 1)
	r.mu.Lock()
	r.failures++
	n := r.failures
	r.mu.Unlock()
	// The first failure and then one in 20 (every 5 s at the default poll):
	// enough to see it, not a line per poll.
	if n == 1 || n%20 == 0 {
		r.opts.Logger.Warn("auth: cannot refresh the revoked-token set", "error", err.Error(),
			"failed_refreshes", n, "stale_for", r.staleness().Round(time.Millisecond).String(), "max_stale", r.opts.MaxStale.String())
	}
	return err
}

// mergeLocked adds rows to the set and drops expired entries, replacing the
// set only when something changed. r.mu must be held.
func (r *Revocations) mergeLocked(rows []revokedRow) {
	cur := *r.set.Load()
	now := db.Micros(r.now())
	changed := false
	for _, row := range rows {
		if _, ok := cur[row.id]; !ok && row.expires > now {
			changed = true
			break
		}
	}
	if !changed {
		for _, exp := range cur {
			if exp <= now {
				changed = true
				break
			}
		}
	}
	if !changed {
		return
	}
	next := make(map[string]int64, len(cur)+len(rows))
	for id, exp := range cur {
		if exp > now {
			next[id] = exp
		}
	}
	for _, row := range rows {
		if row.expires > now {
			next[row.id] = row.expires
		}
	}
	r.set.Store(&next)
}

// pollLoop refreshes every Poll, and at once when the listener is notified.
func (r *Revocations) pollLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
		r.mu.Lock()
		full := time.Since(r.lastFull) >= fullEvery
		r.mu.Unlock()
		_ = r.refresh(ctx, full) // counted and logged in refresh
	}
}

// listenLoop keeps a dedicated PostgreSQL connection listening on
// RevocationChannel and wakes the poll loop on each notification. On any error
// it reconnects after a pause that doubles up to 30 s (a server that refuses
// LISTEN, e.g. behind a transaction-pooling proxy, is not hammered); the poll
// covers the gap.
func (r *Revocations) listenLoop(ctx context.Context) {
	pause := time.Second
	for ctx.Err() == nil {
		listened, err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			pause = time.Second
		}
		r.opts.Logger.Warn("auth: revocation listener lost; polling only until it reconnects", "error", err.Error(), "retry_in", pause.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// listen listens until an error; listened reports whether LISTEN succeeded.
func (r *Revocations) listen(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.Connect(ctx, r.opts.ListenDSN)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+RevocationChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	r.poke() // whatever was revoked while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, fmt.Errorf("wait: %w", err)
		}
		r.poke()
	}
}

func (r *Revocations) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
