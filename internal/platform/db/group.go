package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Batching tunes the write pipeline: how concurrent write transactions (InTx
// calls) share one database transaction and one durable commit.
type Batching struct {
	// MaxSize caps the transactions that share one commit, which bounds how
	// long the first of them waits for the last. Default 32. At most 64:
	// PostgreSQL keeps 64 subtransactions per transaction in shared memory
	// (a batch may open a savepoint per request) and beyond that every
	// snapshot taken anywhere gets slower. 1 turns batching off.
	MaxSize int
	// Linger is how long a writer waits for a batch to fill up to MaxSize
	// before it begins. Default 0: batches form on their own from the
	// requests that arrive while the previous batch runs and commits, so a
	// lone request never waits for company.
	Linger time.Duration
	// Writers is how many batches may be in flight at once on PostgreSQL,
	// each on a connection of its own: one runs its statements while the
	// others commit, so a commit's wait for the log flush overlaps the next
	// batch's work and no two batches ever wait on each other's locks.
	// Default 2 (1 in a pool of 2 or 3), at most half of MaxOpenConns (the rest stay free for reads,
	// which a writer may wait on). SQLite has one writer connection.
	Writers int
}

// Bounds and defaults of Batching.
const (
	DefaultBatchSize    = 32
	MaxBatchSize        = 64
	DefaultBatchWriters = 2
)

func (b Batching) withDefaults(e Engine, maxConns int) (Batching, error) {
	switch {
	case b.MaxSize == 0:
		b.MaxSize = DefaultBatchSize
	case b.MaxSize < 0 || b.MaxSize > MaxBatchSize:
		return b, fmt.Errorf("db: batch size %d: must be between 1 and %d", b.MaxSize, MaxBatchSize)
	}
	if b.Linger < 0 || b.Linger > time.Second {
		return b, fmt.Errorf("db: batch linger %s: must be between 0 and 1s", b.Linger)
	}
	switch {
	case e == SQLite:
		b.Writers = 1
	case b.Writers == 0:
		b.Writers = max(1, min(DefaultBatchWriters, maxConns/2))
	case b.Writers < 0 || b.Writers > maxConns/2:
		// A write transaction may read through the pool while it holds its
		// connection (joined services do): with every connection held by a
		// writer waiting for a read, none would come back.
		return b, fmt.Errorf("db: batch writers %d: must be between 1 and %d, half of the %d connections", b.Writers, maxConns/2, maxConns)
	}
	return b, nil
}

// groupCommitter is the write pipeline. Write transactions that arrive while
// others run queue up and are applied together, in arrival order, in one
// database transaction with one commit: one BEGIN, one COMMIT and one
// durable log flush for the batch instead of one per request. Each request
// keeps its own outcome: its function sees the writes of the requests before
// it in the batch (so several requests for one member apply in order against
// the running balance), a failing one is undone alone and gets its error at
// once, and the rest return when the shared commit is durable.
//
// A batch first runs optimistically, without savepoints (a savepoint is a
// round trip on PostgreSQL). When any request in it fails, the transaction is
// rolled back and the batch runs again with a savepoint per request, so that
// the failure is undone alone and judged against the state it really commits
// after; for a while after that, batches start with savepoints directly.
//
// Whoever holds a writer token runs batches until its own request is done or
// the queue is empty, then hands the token back; a waiter takes it as it
// frees, so there is always a runner while anything is queued and the
// pipeline has no goroutine of its own.
type groupCommitter struct {
	d       *DB
	cfg     Batching
	token   chan struct{}
	exec    sync.Mutex    // held by the batch running its statements (see pass)
	arrived chan struct{} // signalled on every enqueue, for Linger
	mu      sync.Mutex
	queue   []*txRequest

	// careful counts down the batches that begin with savepoints after an
	// optimistic run failed.
	careful atomic.Int32
	queued  atomic.Int64

	tracer trace.Tracer
	sizes  metric.Int64Histogram
	system attribute.KeyValue
}

// carefulBatches is how many batches use savepoints from the start after an
// optimistic run failed: failures come in runs (a member out of points, a
// sold-out product), and each optimistic failure costs a second pass.
const carefulBatches = 16

type txRequest struct {
	ctx    context.Context
	fn     func(ctx context.Context, tx *Tx) error
	err    error
	panicV any
	done   chan struct{}
}

func newGroupCommitter(d *DB, cfg Batching, tp trace.TracerProvider, mp metric.MeterProvider, system attribute.KeyValue) *groupCommitter {
	g := &groupCommitter{
		d:       d,
		cfg:     cfg,
		token:   make(chan struct{}, cfg.Writers),
		arrived: make(chan struct{}, 1),
		tracer:  tp.Tracer(instrumentationName),
		system:  system,
	}
	meter := mp.Meter(instrumentationName)
	var err error
	g.sizes, err = meter.Int64Histogram("godwit.db.write_batch.size",
		metric.WithUnit("{transaction}"),
		metric.WithDescription("Write transactions applied per database commit by the write pipeline."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64))
	if err != nil {
		g.sizes = nil
	}
	_, _ = meter.Int64ObservableGauge("godwit.db.write_queue.length",
		metric.WithUnit("{transaction}"),
		metric.WithDescription("Write transactions waiting for a batch."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(g.queued.Load(), metric.WithAttributes(system))
			return nil
		}))
	return g
}

const instrumentationName = "github.com/godwit-dev/godwit/internal/platform/db"

// run executes fn in a write transaction shared with concurrent callers.
func (g *groupCommitter) run(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	req := &txRequest{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	g.mu.Unlock()
	g.queued.Add(1)
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	select {
	case <-req.done:
	case g.token <- struct{}{}:
		for !req.finished() {
			batch := g.take()
			if len(batch) == 0 {
				break // another writer has req; wait for it below
			}
			g.runBatch(batch)
		}
		<-g.token
		<-req.done
	}
	if req.panicV != nil {
		panic(req.panicV)
	}
	return req.err
}

func (r *txRequest) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *txRequest) finish(err error) {
	r.err = err
	close(r.done)
}

// take removes the next batch from the queue, lingering for more requests
// first when configured to.
func (g *groupCommitter) take() []*txRequest {
	if g.cfg.Linger > 0 && g.cfg.MaxSize > 1 {
		g.linger()
	}
	g.mu.Lock()
	n := min(len(g.queue), g.cfg.MaxSize)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()
	g.queued.Add(-int64(n))
	return batch
}

// linger waits until the queue holds a full batch or Linger has passed since
// the wait began. An empty queue does not wait.
func (g *groupCommitter) linger() {
	var timer *time.Timer
	for {
		g.mu.Lock()
		n := len(g.queue)
		g.mu.Unlock()
		if n == 0 || n >= g.cfg.MaxSize {
			break
		}
		if timer == nil {
			timer = time.NewTimer(g.cfg.Linger)
			defer timer.Stop()
		}
		select {
		case <-g.arrived:
		case <-timer.C:
			return
		}
	}
}

// runBatch applies batch in one transaction and commits it; every request is
// finished when it returns.
func (g *groupCommitter) runBatch(batch []*txRequest) {
	ctx, span := g.startSpan(batch)
	defer span.End()
	if g.sizes != nil {
		g.sizes.Record(ctx, int64(len(batch)), metric.WithAttributes(g.system))
	}
	savepoints := len(batch) > 1 && g.careful.Load() > 0
	if savepoints {
		g.careful.Add(-1)
	}
	if !savepoints && len(batch) > 1 {
		if g.pass(ctx, batch, false) {
			g.endSpan(span, batch, false)
			return
		}
		// A request failed in the optimistic run; its writes and everyone
		// else's were rolled back. Judge each one again, alone if it fails.
		g.careful.Store(carefulBatches)
		savepoints = true
	}
	g.pass(ctx, batch, savepoints)
	g.endSpan(span, batch, savepoints && len(batch) > 1)
}

// startSpan starts ledger.write_batch as a child of the first sampled
// request's span, linked to every request's span and linked from each.
func (g *groupCommitter) startSpan(batch []*txRequest) (context.Context, trace.Span) {
	parent := batch[0].ctx
	for _, r := range batch {
		if trace.SpanContextFromContext(r.ctx).IsSampled() {
			parent = r.ctx
			break
		}
	}
	parentSC := trace.SpanContextFromContext(parent)
	var links []trace.Link
	for _, r := range batch {
		if sc := trace.SpanContextFromContext(r.ctx); sc.IsValid() && !sc.Equal(parentSC) {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	// The transaction outlives any one caller, so it does not end with a
	// caller's context.
	ctx, span := g.tracer.Start(context.WithoutCancel(parent), "ledger.write_batch",
		trace.WithLinks(links...),
		trace.WithAttributes(g.system, attribute.Int("ledger.batch.size", len(batch))))
	if sc := span.SpanContext(); sc.IsSampled() {
		for _, r := range batch {
			if rs := trace.SpanFromContext(r.ctx); rs.SpanContext().IsValid() && !rs.SpanContext().Equal(parentSC) {
				rs.AddLink(trace.Link{SpanContext: sc})
			}
		}
	}
	return ctx, span
}

func (g *groupCommitter) endSpan(span trace.Span, batch []*txRequest, reran bool) {
	failed := 0
	var commitErr error
	for _, r := range batch {
		if r.err != nil {
			failed++
			commitErr = r.err
		}
	}
	span.SetAttributes(attribute.Int("ledger.batch.failed", failed), attribute.Bool("ledger.batch.savepoints", reran))
	if failed == len(batch) && commitErr != nil {
		span.SetStatus(codes.Error, "no request in the batch committed")
	}
}

// pass runs the unfinished requests of batch in one transaction. With
// savepoints it finishes every request: one that fails is undone alone and
// gets its error, the rest get the commit's outcome. Without, it runs them
// bare and reports false, finishing none that ran, as soon as one fails.
func (g *groupCommitter) pass(ctx context.Context, batch []*txRequest, savepoints bool) bool {
	// One batch at a time runs its statements; the others in flight are
	// committing. A committing transaction waits on no lock, so two batches
	// can never wait on each other (a deadlock PostgreSQL would take a
	// second to find), while one batch's commit still overlaps the next
	// one's statements.
	g.exec.Lock()
	executing := true
	stopExecuting := func() {
		if executing {
			executing = false
			g.exec.Unlock()
		}
	}
	defer stopExecuting()
	sqlTx, err := g.d.write.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range batch {
			if !r.finished() {
				r.finish(fmt.Errorf("db: begin: %w", err))
			}
		}
		return true
	}
	tx := &Tx{Tx: sqlTx, engine: g.d.engine, cache: g.d.stmts, owner: g.d}
	defer g.prepareAfter(ctx, tx)
	pending := 0
	for _, r := range batch {
		if !r.finished() {
			pending++
		}
	}
	var ok []*txRequest
	for _, r := range batch {
		if r.finished() {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			// Its caller gave up before it ran: nothing of it is in tx.
			r.finish(err)
			continue
		}
		shared := savepoints && pending > 1
		err := g.runOne(tx, r, shared)
		if err == nil {
			ok = append(ok, r)
			continue
		}
		if !shared && pending > 1 {
			// The optimistic run failed: roll it all back and let the
			// caller run the batch again with savepoints.
			_ = sqlTx.Rollback()
			r.panicV = nil
			return false
		}
		if !shared || errors.Is(err, errTxBroken) {
			// A lone request ran without a savepoint, or the transaction
			// itself failed (a savepoint could not be undone): nothing in
			// it may commit.
			_ = sqlTx.Rollback()
			r.finish(err)
			for _, o := range ok {
				o.finish(err)
			}
			g.finishRest(batch, r, err)
			return true
		}
		r.finish(err)
	}
	stopExecuting()
	err = sqlTx.Commit()
	if err != nil {
		_ = sqlTx.Rollback()
		err = fmt.Errorf("%w: %w", errCommit, err)
	}
	for _, r := range ok {
		r.finish(err)
	}
	return true
}

// finishRest fails the requests of batch after failed, which never ran.
func (g *groupCommitter) finishRest(batch []*txRequest, failed *txRequest, err error) {
	after := false
	for _, r := range batch {
		if after && !r.finished() {
			r.finish(err)
		}
		after = after || r == failed
	}
}

func (g *groupCommitter) prepareAfter(ctx context.Context, tx *Tx) {
	if g.d.stmts != nil && len(tx.unprepared) > 0 {
		g.d.stmts.prepare(ctx, tx.unprepared)
	}
}

var errTxBroken = errors.New("db: transaction unusable after a failed savepoint rollback")

// runOne runs r.fn in tx — under a savepoint when shared, so that its failure
// undoes only its own writes — and records a panic for r's caller. fn runs
// without r's cancellation: a cancelled statement interrupts the SQLite
// connection and makes pgx drop the PostgreSQL one, which would abort the
// whole shared transaction.
func (g *groupCommitter) runOne(tx *Tx, r *txRequest, shared bool) (err error) {
	ctx := context.WithValue(context.WithoutCancel(r.ctx), inTxKey{}, g.d)
	defer func() {
		if p := recover(); p != nil {
			r.panicV = p
			err = fmt.Errorf("db: transaction function panicked: %v", p)
		}
	}()
	// A joined call's failure (see Join) belongs to the request that made
	// it, not to the requests after it in the batch.
	tx.joinErr = nil
	defer func() { tx.joinErr = nil }()
	fn := func(ctx context.Context, tx *Tx) error {
		if err := r.fn(ctx, tx); err != nil {
			return err
		}
		if tx.joinErr != nil {
			// Part of the failed call's writes may be in tx: they must not
			// commit, whatever fn made of the failure.
			return fmt.Errorf("db: a joined call failed and the transaction function went on: %w", tx.joinErr)
		}
		return nil
	}
	if !shared {
		return fn(ctx, tx)
	}
	err = tx.underSavepoint(ctx, fn)
	if err != nil && errors.Is(err, errSavepointRollback) {
		return errors.Join(errTxBroken, err)
	}
	return err
}

// QueuedWrites reports how many write transactions wait for a batch.
func (d *DB) QueuedWrites() int { return int(d.group.queued.Load()) }
