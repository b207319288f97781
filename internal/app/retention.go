package app

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Retention defaults serve starts with (see Defaults and docs/security.md).
const (
	// DefaultRetainCarts: a cart unchanged for 30 days is abandoned.
	DefaultRetainCarts = 30 * 24 * time.Hour
	// DefaultRetainIdempotency: a key replays for 24 hours, as Stripe's do.
	DefaultRetainIdempotency = 24 * time.Hour
	// DefaultRetainFailedCheckouts: a failed checkout's email is kept 30 days.
	DefaultRetainFailedCheckouts = 30 * 24 * time.Hour
)

// RetentionConfig says how long the rows anonymous callers create are kept.
// A zero or negative age keeps them for ever: a library user opts in, serve
// sets the defaults above from its --retain-* flags.
type RetentionConfig struct {
	// Carts: carts (and their items) unchanged this long are deleted, unless
	// an in-progress checkout names them.
	Carts time.Duration
	// IdempotencyKeys: Idempotency-Key records older than this are deleted
	// (a pending one only once its claim ran out that long ago too).
	IdempotencyKeys time.Duration
	// FailedCheckouts: failed checkouts unchanged this long lose their email;
	// the row stays for accounting and verify.
	FailedCheckouts time.Duration
}

// Retention kinds, the kind attribute of godwit.retention.purged.
const (
	RetentionCarts           = "carts"
	RetentionIdempotencyKeys = "idempotency_keys"
	RetentionFailedCheckouts = "failed_checkout_emails"
)

// A retention pass works in batches of retentionBatch rows, each its own
// short transaction (so it never holds SQLite's writer, or PostgreSQL row
// locks, for long), and at most retentionMaxBatches per kind: a backlog is
// worked off over several passes.
const (
	retentionBatch      = 500
	retentionMaxBatches = 200
)

// retentionKind is one kind of row the retention job removes.
type retentionKind struct {
	kind  string
	keep  time.Duration
	purge func(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// retentionKinds are the kinds this process purges: carts where the cart
// service runs, failed checkouts where checkout runs, idempotency keys in
// every process (every process serves routes that take a key).
func (a *App) retentionKinds() []retentionKind {
	var ks []retentionKind
	if a.carts != nil {
		ks = append(ks, retentionKind{RetentionCarts, a.retention.Carts, a.carts.PurgeAbandoned})
	}
	if a.idem != nil {
		ks = append(ks, retentionKind{RetentionIdempotencyKeys, a.retention.IdempotencyKeys, a.idem.PurgeBatch})
	}
	if a.Checkout != nil {
		ks = append(ks, retentionKind{RetentionFailedCheckouts, a.retention.FailedCheckouts, a.Checkout.ScrubFailed})
	}
	return ks
}

// RetentionPass removes what has outlived its retention (RetentionConfig):
// one pass of the retention job, safe beside the same pass on other replicas
// (each batch is a conditional statement). Every row removed or scrubbed is
// counted on godwit.retention.purged by kind.
func (a *App) RetentionPass(ctx context.Context) error {
	now := a.now()
	var errList []error
	for _, k := range a.retentionKinds() {
		if k.keep <= 0 {
			continue
		}
		n, err := drain(ctx, k.purge, now.Add(-k.keep))
		if n > 0 {
			a.purged.Add(ctx, int64(n), metric.WithAttributes(attribute.String("kind", k.kind)))
			a.log.InfoContext(ctx, "retention purged", "kind", k.kind, "count", n)
		}
		if err != nil {
			errList = append(errList, err)
		}
	}
	return errors.Join(errList...)
}

// drain runs purge in batches until one comes back short, the pass's batch
// budget is spent, or ctx ends, and reports how many rows went.
func drain(ctx context.Context, purge func(context.Context, time.Time, int) (int, error), cutoff time.Time) (int, error) {
	total := 0
	for range retentionMaxBatches {
		n, err := purge(ctx, cutoff, retentionBatch)
		total += n
		if err != nil || n < retentionBatch || ctx.Err() != nil {
			return total, err
		}
	}
	return total, nil
}

// newPurgedCounter makes godwit.retention.purged.
func newPurgedCounter(mp metric.MeterProvider) metric.Int64Counter {
	c, _ := mp.Meter("github.com/godwit-dev/godwit/internal/app").Int64Counter("godwit.retention.purged",
		metric.WithUnit("{row}"), metric.WithDescription("Rows the retention job deleted or scrubbed, by kind"))
	return c
}
