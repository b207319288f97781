// Package db opens Godwit's database — embedded SQLite or PostgreSQL — migrates it,
// and runs write transactions with bounded retries. The few differences between the
// two engines live here, so domain SQL stays plain and visible next to its code.
//
// Conventions every schema follows, so the same SQL runs on both engines:
//   - placeholders are $1, $2, … (SQLite accepts them positionally);
//   - timestamps are BIGINT Unix microseconds in UTC (SQLite has no timestamp type,
//     and integers compare and index identically on both); use Micros and FromMicros;
//   - identifiers are TEXT; money and points are BIGINT; no floating point.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Engine names a supported database engine.
type Engine string

// The supported engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Options tune Open. The zero value is usable.
type Options struct {
	TracerProvider trace.TracerProvider // nil: the global provider
	MeterProvider  metric.MeterProvider // nil: the global provider
	// MaxAttempts bounds how often a transaction is run when it fails with a
	// serialisation failure, deadlock or busy database. Default 8.
	MaxAttempts int
	// MaxOpenConns caps the PostgreSQL pool and the SQLite reader pool.
	// Default DefaultMaxOpenConns; at least MinOpenConns. Every process
	// opens up to this many connections, so their sum must stay within
	// PostgreSQL's max_connections (docs/operations.md, "Connection budget").
	MaxOpenConns int
	// SQLiteStatementSpans traces every SQLite statement, not only each
	// transaction's begin, commit and rollback. SQLite statements are
	// in-process calls of a few microseconds whose time the domain spans
	// already show, and a span each was half of an earn's spans and most of
	// tracing's cost; turn them on to see which statement is slow. PostgreSQL
	// statements are network round trips and are always traced.
	SQLiteStatementSpans bool
	// Batching tunes the write pipeline that lets concurrent write
	// transactions share commits (see InTx).
	Batching Batching
	// ApplicationName is PostgreSQL's application_name for every connection
	// (default DefaultApplicationName), unless the DSN sets one: it names
	// Godwit's sessions in pg_stat_activity, the server's log and
	// pg_terminate_backend filters. SQLite ignores it.
	ApplicationName string
}

// Bounds of Options.MaxOpenConns.
const (
	DefaultMaxOpenConns = 16
	// MinOpenConns is the smallest pool: a write transaction may read
	// through the pool while it holds a connection of its own (joined
	// services do), so one connection alone could wait on itself.
	MinOpenConns = 2
)

// DefaultApplicationName is Options.ApplicationName when empty.
const DefaultApplicationName = "godwit"

// DB is an open database. Writes go through InTx; reads outside a transaction
// use Read. On SQLite, writes are funnelled through a single connection that
// begins with BEGIN IMMEDIATE, so concurrent writers queue in Go instead of
// failing with "database is locked"; readers have their own pool (WAL mode).
type DB struct {
	engine      Engine
	path        string // SQLite only: the database file
	write       *sql.DB
	read        *sql.DB
	stmts       *stmtCache    // SQLite writer only
	checkpoints *checkpointer // SQLite only
	group       *groupCommitter
	maxAttempts int
}

// Open opens the database named by dsn: a postgres:// or postgresql:// URL selects
// PostgreSQL; anything else is a SQLite file path (optionally prefixed "sqlite:"),
// whose directory is created if missing.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	switch {
	case opts.MaxOpenConns == 0:
		opts.MaxOpenConns = DefaultMaxOpenConns
	case opts.MaxOpenConns < MinOpenConns:
		return nil, fmt.Errorf("db: max open connections %d: must be at least %d", opts.MaxOpenConns, MinOpenConns)
	}
	engine := SQLite
	if IsPostgresDSN(dsn) {
		engine = Postgres
	}
	batching, err := opts.Batching.withDefaults(engine, opts.MaxOpenConns)
	if err != nil {
		return nil, err
	}
	var d *DB
	if engine == Postgres {
		d, err = openPostgres(dsn, opts)
	} else {
		d, err = openSQLite(strings.TrimPrefix(dsn, "sqlite:"), opts)
	}
	if err != nil {
		return nil, err
	}
	d.maxAttempts = opts.MaxAttempts
	tp, mp := opts.TracerProvider, opts.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	system := semconv.DBSystemNameSQLite
	if engine == Postgres {
		system = semconv.DBSystemNamePostgreSQL
	}
	d.group = newGroupCommitter(d, batching, tp, mp, system)
	if err := d.Ping(ctx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("db: connect %s: %w", d.engine, err)
	}
	return d, nil
}

// IsPostgresDSN reports whether dsn names a PostgreSQL database.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func otelOptions(system attribute.KeyValue, opts Options) []otelsql.Option {
	statements := system != semconv.DBSystemNameSQLite || opts.SQLiteStatementSpans
	o := []otelsql.Option{
		otelsql.WithAttributes(system),
		// Row iteration and connection bookkeeping spans are noise in a checkout
		// trace; one span per statement is what an SRE reads.
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitConnResetSession: true,
			OmitConnPrepare:      true,
			OmitRows:             true,
			DisableErrSkip:       true,
			// Statements outside any traced operation (migrations, pool upkeep)
			// would each become a one-span trace and crowd out real ones.
			SpanFilter: func(ctx context.Context, m otelsql.Method, query string, _ []driver.NamedValue) bool {
				if !trace.SpanContextFromContext(ctx).IsValid() {
					return false
				}
				switch m {
				case otelsql.MethodConnBeginTx, otelsql.MethodTxCommit, otelsql.MethodTxRollback:
					return true
				}
				// The write pipeline's savepoints are bookkeeping; a rollback
				// to one is worth seeing.
				if strings.HasPrefix(query, "SAVEPOINT ") || strings.HasPrefix(query, "RELEASE SAVEPOINT ") {
					return false
				}
				return statements
			},
		}),
	}
	if opts.TracerProvider != nil {
		o = append(o, otelsql.WithTracerProvider(opts.TracerProvider))
	}
	if opts.MeterProvider != nil {
		o = append(o, otelsql.WithMeterProvider(opts.MeterProvider))
	}
	return o
}

func openPostgres(dsn string, opts Options) (*DB, error) {
	o := otelOptions(semconv.DBSystemNamePostgreSQL, opts)
	dsn, err := withApplicationName(dsn, opts.ApplicationName)
	if err != nil {
		return nil, err
	}
	pool, err := otelsql.Open("pgx", dsn, o...)
	if err != nil {
		return nil, fmt.Errorf("db: open postgres: %w", err)
	}
	pool.SetMaxOpenConns(opts.MaxOpenConns)
	pool.SetMaxIdleConns(opts.MaxOpenConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	_, _ = otelsql.RegisterDBStatsMetrics(pool, o...)
	return &DB{engine: Postgres, write: pool, read: pool}, nil
}

// withApplicationName adds application_name=name (default
// DefaultApplicationName) to a PostgreSQL URL that does not set one; pgx
// sends it as a run-time parameter when each connection starts.
func withApplicationName(dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// Not echoed: the DSN may hold a password.
		return "", errors.New("db: the PostgreSQL DSN is not a valid URL")
	}
	q := u.Query()
	if q.Get("application_name") != "" {
		return dsn, nil
	}
	if name == "" {
		name = DefaultApplicationName
	}
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func openSQLite(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("db: empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("db: create data dir: %w", err)
		}
	}
	pragmas := url.Values{}
	// temp_store(MEMORY): a savepoint (db.Join) keeps the original of every page
	// it changes in a sub-journal, by default a temporary file opened, written
	// and closed per savepoint — 14% of an earn's CPU in the profile.
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)", "temp_store(MEMORY)"} {
		pragmas.Add("_pragma", p)
	}
	o := otelOptions(semconv.DBSystemNameSQLite, opts)

	wq := url.Values{"_txlock": {"immediate"}}
	for k, v := range pragmas {
		wq[k] = v
	}
	// The writer never checkpoints: a checkpoint inside a commit (SQLite's
	// default, every 1,000 WAL pages) copies pages and fsyncs while every other
	// writer waits. A background checkpointer does it on its own connection.
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	write, err := otelsql.Open("sqlite", "file:"+path+"?"+wq.Encode(), o...)
	if err != nil {
		return nil, fmt.Errorf("db: open sqlite: %w", err)
	}
	// One writer connection: SQLite allows one writer at a time anyway, and
	// queueing in the pool is cheaper and fairer than spinning on SQLITE_BUSY.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	rq := url.Values{}
	for k, v := range pragmas {
		rq[k] = v
	}
	rq.Add("_pragma", "query_only(1)")
	read, err := otelsql.Open("sqlite", "file:"+path+"?"+rq.Encode(), o...)
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("db: open sqlite reader: %w", err)
	}
	read.SetMaxOpenConns(opts.MaxOpenConns)
	read.SetMaxIdleConns(opts.MaxOpenConns)
	_, _ = otelsql.RegisterDBStatsMetrics(write, o...)
	cp, err := startCheckpointer("file:"+path+"?"+pragmas.Encode(), checkpointEvery)
	if err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, err
	}
	return &DB{engine: SQLite, path: path, write: write, read: read, stmts: newStmtCache(write, 512), checkpoints: cp}, nil
}

// Engine reports which engine d runs on.
func (d *DB) Engine() Engine { return d.engine }

// Read returns the pool for reads outside a write transaction.
func (d *DB) Read() *sql.DB { return d.read }

// Ping checks that the database answers; /readyz uses it.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.write.PingContext(ctx); err != nil {
		return err
	}
	if d.read != d.write {
		return d.read.PingContext(ctx)
	}
	return nil
}

// Close closes every pool.
func (d *DB) Close() error {
	var err error
	if d.checkpoints != nil {
		err = d.checkpoints.stop()
	}
	if d.stmts != nil {
		err = errors.Join(err, d.stmts.close())
	}
	err = errors.Join(err, d.write.Close())
	if d.read != d.write {
		err = errors.Join(err, d.read.Close())
	}
	return err
}

// Tx is a write transaction. It embeds *sql.Tx and knows its engine.
type Tx struct {
	*sql.Tx
	engine     Engine
	cache      *stmtCache
	unprepared []string // statements this transaction ran unprepared
	savepoints int      // savepoints opened so far, for unique names
	owner      *DB
	joinErr    error // the first failure of a joined call (see Join)
}

// Engine reports the engine the transaction runs on.
func (tx *Tx) Engine() Engine { return tx.engine }

// ForUpdate returns " FOR UPDATE" on PostgreSQL and "" on SQLite, where
// BEGIN IMMEDIATE already holds the database's single write lock.
func (tx *Tx) ForUpdate() string { return ForUpdate(tx.engine) }

// ForUpdate returns the row-locking suffix for engine e.
func ForUpdate(e Engine) string {
	if e == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

type (
	inTxKey   struct{}
	joinTxKey struct{}
)

// ErrNestedTx is returned when InTx is called while the context is already inside
// a write transaction on the same database that was not offered for joining
// (see Join): on SQLite's single writer connection that would deadlock.
var ErrNestedTx = errors.New("db: nested write transaction")

// Join returns a context in which InTx on tx's database does not begin a
// transaction of its own but runs fn inside tx, so fn's writes commit or roll
// back with tx. The HTTP layer uses it to record an Idempotency-Key in the same
// transaction as the request's effect: one commit instead of three.
//
// A joined call that fails may leave part of its writes in tx (no savepoint:
// two round trips a request saved), so it marks tx failed (JoinFailed): tx must
// then be rolled back, and any later joined call returns ErrJoinedTxFailed,
// which IsRetryable reports, so the owner can run everything again on a fresh
// transaction. Retries are left to the InTx that owns tx.
func Join(ctx context.Context, tx *Tx) context.Context {
	return context.WithValue(ctx, joinTxKey{}, tx)
}

// ErrJoinedTxFailed is returned by InTx under Join once an earlier joined call
// in the same transaction failed.
var ErrJoinedTxFailed = errors.New("db: an earlier call in this joined transaction failed; it must be rolled back")

// JoinFailed reports whether a call joined to tx failed (see Join): tx may hold
// part of that call's writes and must not commit.
func (tx *Tx) JoinFailed() bool { return tx.joinErr != nil }

// joined runs fn in tx for a joined InTx call.
func (tx *Tx) joined(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) (err error) {
	if tx.joinErr != nil {
		return fmt.Errorf("%w (%w)", ErrJoinedTxFailed, tx.joinErr)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.joinErr = fmt.Errorf("panic: %v", p)
			panic(p)
		}
	}()
	if err = fn(ctx, tx); err != nil {
		tx.joinErr = err
	}
	return err
}

// InTx runs fn in a write transaction and commits it when fn returns nil. A
// serialisation failure, deadlock or busy database, or a connection lost
// before the commit (see rerunnable), makes it roll back and run fn again, at
// most Options.MaxAttempts times in all, with jittered backoff; fn must
// therefore have no effects outside the transaction. Under a context from Join,
// fn runs inside the joined transaction instead.
//
// Concurrent InTx calls go through the write pipeline (see Batching): they are
// applied one after another, in arrival order, in one database transaction
// that commits once for all of them. fn sees the writes of the calls before it
// in that transaction; when fn fails, only its own writes are undone. InTx
// returns after the shared commit is durable. fn runs without ctx's
// cancellation (a cancelled statement would abort everyone's transaction); a
// call whose ctx ends before its turn does not run.
func (d *DB) InTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	if tx, ok := ctx.Value(joinTxKey{}).(*Tx); ok && tx.owner == d {
		return tx.joined(ctx, fn)
	}
	if ctx.Value(inTxKey{}) == d {
		return ErrNestedTx
	}
	ctx = context.WithValue(ctx, inTxKey{}, d)
	var err error
	for attempt := 1; ; attempt++ {
		err = d.group.run(ctx, fn)
		if err == nil || !rerunnable(err) || attempt >= d.maxAttempts {
			if err != nil && rerunnable(err) {
				return fmt.Errorf("db: gave up after %d attempts: %w", attempt, err)
			}
			return err
		}
		backoff := time.Duration(attempt*attempt) * time.Millisecond
		backoff += rand.N(backoff + time.Millisecond)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// errCommit marks a failed commit: whether the transaction committed is
// then unknown, so a lost connection there is not rerun (see rerunnable).
var errCommit = errors.New("db: commit")

// rerunnable reports whether InTx may run a failed transaction again: a
// transient concurrency failure (IsRetryable), or a connection lost before the
// commit was sent (a terminated backend, a restarting server), which rolled
// the transaction back. A connection lost during the commit is not: the
// transaction may have committed, and the caller must find out.
func rerunnable(err error) bool {
	// A commit on a connection already known to be closed was never sent
	// (pgconn.SafeToRetry).
	return IsRetryable(err) || (IsUnavailable(err) && (!errors.Is(err, errCommit) || pgconn.SafeToRetry(err)))
}

// underSavepoint runs fn inside tx, rolling fn's writes back to a savepoint
// when it fails or panics (SQLite's group commit runs each caller so). On
// PostgreSQL this would also clear the aborted state a failed statement leaves.
func (tx *Tx) underSavepoint(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) (err error) {
	tx.savepoints++
	name := fmt.Sprintf("godwit_sp%d", tx.savepoints)
	if _, err := tx.Tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return fmt.Errorf("db: savepoint: %w", err)
	}
	defer func() {
		p := recover()
		if p != nil || err != nil {
			// Undo fn's writes but keep the transaction; a failure here leaves
			// it unusable, which the owner's commit will report.
			if _, rerr := tx.Tx.ExecContext(context.WithoutCancel(ctx), "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
				err = errors.Join(err, errSavepointRollback, rerr)
			}
		}
		if p != nil {
			panic(p)
		}
		if tx.engine == Postgres {
			// Releasing would cost a round trip and give nothing back: the
			// subtransaction stays part of the transaction either way.
			return
		}
		if _, rerr := tx.Tx.ExecContext(context.WithoutCancel(ctx), "RELEASE SAVEPOINT "+name); rerr != nil && err == nil {
			err = fmt.Errorf("db: release savepoint: %w", rerr)
		}
	}()
	return fn(ctx, tx)
}

// errSavepointRollback marks a failure to undo a savepoint: the enclosing
// transaction holds writes it should not and must not commit.
var errSavepointRollback = errors.New("db: rollback to savepoint failed")

// IsRetryable reports whether err is a transient concurrency failure that a
// fresh attempt of the whole transaction may not hit: PostgreSQL serialisation
// failures (40001) and deadlocks (40P01), SQLite busy/locked, and
// ErrJoinedTxFailed.
func IsRetryable(err error) bool {
	if errors.Is(err, ErrJoinedTxFailed) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// IsUniqueViolation reports whether err is a unique or primary-key violation.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		c := sqliteErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUnavailable reports whether err means the database could not be reached
// or the connection was lost (a terminated backend, a restarting server), as
// opposed to a statement failing.
func IsUnavailable(err error) bool {
	// Any failure to connect, whatever the server said (a database not
	// accepting connections is 55000 inside it).
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P03"
	}
	return errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn) // the connection was lost earlier
}

// IsTimeout reports whether err is a statement the server cancelled because
// a timeout it enforces ran out: statement_timeout (57014, query_canceled) or
// lock_timeout (55P03). Godwit sets neither; an operator may, per role,
// database or DSN.
func IsTimeout(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57014" || pgErr.Code == "55P03"
	}
	return false
}

// Micros converts t to the stored form: Unix microseconds, UTC.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// FromMicros converts a stored timestamp back to a UTC time.
func FromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// InList returns the placeholders "$from, $from+1, …" for an IN (…) list of
// values, and the values as arguments to append after the first from-1.
func InList(from int, values []string) (string, []any) {
	var b strings.Builder
	args := make([]any, len(values))
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
		args[i] = v
	}
	return b.String(), args
}
