package db

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements for SQLite's single writer connection.
// The pure-Go driver does not cache statements itself, and re-parsing each SQL
// string on every call was a quarter of an earn's CPU. PostgreSQL needs no such
// cache: pgx already caches prepared statements per connection.
//
// A statement is prepared after the transaction that first ran it, when the
// writer connection is free; later transactions reuse it. One rule follows:
// within a transaction, do not run a statement again while iterating the rows
// of that same statement (no code here does).
type stmtCache struct {
	db    *sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
	max   int
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt), max: max}
}

// lookup returns the cached statement for query, or nil.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stmts[query]
}

// prepare prepares queries not yet cached. It must run while no transaction
// holds the writer connection (after a transaction ends), because preparing
// needs that connection. Failures are ignored: the statement just stays unprepared.
func (c *stmtCache) prepare(ctx context.Context, queries []string) {
	for _, q := range queries {
		c.mu.Lock()
		if c.stmts[q] != nil || len(c.stmts) >= c.max {
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		s, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts[q] == nil {
			c.stmts[q] = s
			s = nil
		}
		c.mu.Unlock()
		if s != nil {
			_ = s.Close()
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, s := range c.stmts {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, q)
	}
	return first
}

// ExecContext runs a statement in the transaction, reusing a prepared
// statement on SQLite.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := tx.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs a query in the transaction, reusing a prepared statement on SQLite.
func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := tx.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return tx.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a single-row query in the transaction, reusing a
// prepared statement on SQLite.
func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := tx.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.Tx.QueryRowContext(ctx, query, args...)
}

// stmt returns the transaction-bound prepared statement for query, or nil to
// run it unprepared (PostgreSQL, or its first use, after which InTx prepares it).
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if tx.cache == nil {
		return nil
	}
	s := tx.cache.lookup(query)
	if s == nil {
		tx.unprepared = append(tx.unprepared, query)
		return nil
	}
	// The statement was prepared on the one writer connection, which this
	// transaction holds, so database/sql reuses it instead of re-preparing.
	return tx.Tx.StmtContext(ctx, s)
}
