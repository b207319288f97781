package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// maxGroup caps how many transactions share one SQLite commit, which bounds
// how long the first of them waits for the last.
const maxGroup = 32

// groupCommitter runs SQLite write transactions that arrive while another is
// running together, in one database transaction with a savepoint each: one
// BEGIN and one COMMIT (one WAL append, where pages that several of them
// touch — a table's last leaf, an index's edge — are written once) instead of
// one per caller. Each caller's fn still sees and undoes only its own writes:
// a failing fn is rolled back to its savepoint and gets its own error at
// once; the rest return when the shared commit is durable.
//
// Whoever holds the token runs batches until its own request is done, then
// passes the token on; waiters take it when it frees, so there is always a
// runner while anything is queued and no goroutine of its own.
type groupCommitter struct {
	d     *DB
	token chan struct{}
	mu    sync.Mutex
	queue []*txRequest
}

type txRequest struct {
	ctx    context.Context
	fn     func(ctx context.Context, tx *Tx) error
	err    error
	panicV any
	done   chan struct{}
}

func newGroupCommitter(d *DB) *groupCommitter {
	return &groupCommitter{d: d, token: make(chan struct{}, 1)}
}

// run executes fn in a write transaction shared with concurrent callers.
func (g *groupCommitter) run(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	req := &txRequest{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	g.mu.Unlock()
	select {
	case <-req.done:
	case g.token <- struct{}{}:
		for !req.finished() {
			if batch := g.take(); len(batch) > 0 {
				g.runBatch(batch)
			}
		}
		<-g.token
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

func (g *groupCommitter) take() []*txRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := min(len(g.queue), maxGroup)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	return batch
}

// runBatch runs every request of batch in one transaction and commits it.
func (g *groupCommitter) runBatch(batch []*txRequest) {
	// The transaction outlives any one caller, so it does not end with a
	// caller's context; its BEGIN and COMMIT are traced in the first caller's.
	base := context.WithoutCancel(batch[0].ctx)
	sqlTx, err := g.d.write.BeginTx(base, nil)
	if err != nil {
		for _, r := range batch {
			r.finish(fmt.Errorf("db: begin: %w", err))
		}
		return
	}
	tx := &Tx{Tx: sqlTx, engine: g.d.engine, cache: g.d.stmts, owner: g.d}
	var ok []*txRequest
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.finish(err)
			continue
		}
		if err := g.runOne(tx, r, len(batch) > 1); err != nil {
			if len(batch) == 1 || errors.Is(err, errTxBroken) {
				// A lone request ran without a savepoint, or the transaction
				// itself failed (a savepoint could not be undone): nothing in
				// it may commit.
				_ = sqlTx.Rollback()
				r.finish(err)
				for _, o := range ok {
					o.finish(err)
				}
				g.finishRest(batch, r, err)
				g.prepareAfter(base, tx)
				return
			}
			r.finish(err)
			continue
		}
		ok = append(ok, r)
	}
	err = sqlTx.Commit()
	if err != nil {
		_ = sqlTx.Rollback()
		err = fmt.Errorf("db: commit: %w", err)
	}
	for _, r := range ok {
		r.finish(err)
	}
	g.prepareAfter(base, tx)
}

// finishRest fails the requests of batch after failed, which never ran.
func (g *groupCommitter) finishRest(batch []*txRequest, failed *txRequest, err error) {
	after := false
	for _, r := range batch {
		if after {
			r.finish(err)
		}
		after = after || r == failed
	}
}

func (g *groupCommitter) prepareAfter(ctx context.Context, tx *Tx) {
	if len(tx.unprepared) > 0 {
		g.d.stmts.prepare(ctx, tx.unprepared)
	}
}

var errTxBroken = errors.New("db: transaction unusable after a failed savepoint rollback")

// runOne runs r.fn in tx — under a savepoint when it shares tx, so that its
// failure undoes only its own writes — and records a panic for r's caller.
// fn runs without r's cancellation: a cancelled statement interrupts the
// SQLite connection, which would abort the whole shared transaction.
func (g *groupCommitter) runOne(tx *Tx, r *txRequest, shared bool) (err error) {
	ctx := context.WithValue(context.WithoutCancel(r.ctx), inTxKey{}, g.d)
	defer func() {
		if p := recover(); p != nil {
			r.panicV = p
			err = fmt.Errorf("db: transaction function panicked: %v", p)
		}
	}()
	if !shared {
		return r.fn(ctx, tx)
	}
	// A joined call that fails marks tx failed (see Join); when r fails, its
	// savepoint takes that call's writes back, so the mark is r's alone and
	// must not fail the requests after it in the batch.
	joinErr := tx.joinErr
	err = tx.underSavepoint(ctx, r.fn)
	if err != nil && errors.Is(err, errSavepointRollback) {
		return errors.Join(errTxBroken, err)
	}
	if err != nil {
		tx.joinErr = joinErr
	}
	return err
}
