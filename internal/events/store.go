package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Recorder writes events as rows of the events table inside the caller's
// transaction. Its zero value is ready to use.
type Recorder struct{}

// Record writes evs in tx, in one statement per thousand events.
func (Recorder) Record(ctx context.Context, tx *db.Tx, evs ...Event) error {
	if len(evs) == 0 {
		return nil
	}
	for len(evs) > 0 {
		n := min(len(evs), maxPerStatement)
		q, args := Recorder{}.Statement(evs[:n]...)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("events: record %s: %w", evs[0].Type, err)
		}
		evs = evs[n:]
	}
	return nil
}

// maxPerStatement keeps a statement's parameters (8 an event) well under
// PostgreSQL's limit of 65535 and SQLite's of 32766.
const maxPerStatement = 1000

// Statement returns the INSERT that Record runs for evs, its parameters
// numbered from $1, for a caller that folds it into a write of its own (the
// ledger's one-statement credit on PostgreSQL), so recording an event adds
// no round trip. The plain VALUES list needs no casts on either engine.
func (Recorder) Statement(evs ...Event) (string, []any) {
	var b strings.Builder
	b.WriteString(`INSERT INTO events (id, type, source, subject, time, data, traceparent, tracestate) VALUES `)
	args := make([]any, 0, 8*len(evs))
	for i, e := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
		args = append(args, e.ID, e.Type, e.Source, e.Subject, db.Micros(e.Time), string(e.Data), e.TraceParent, e.TraceState)
	}
	return b.String(), args
}

// Columns is the column list Scan reads, for queries of the events table.
const Columns = `id, type, source, subject, time, data, traceparent, tracestate`

// Scanner is a row to scan.
type Scanner interface{ Scan(dest ...any) error }

// Scan reads an event from a row of Columns.
func Scan(r Scanner) (Event, error) {
	var (
		e    Event
		at   int64
		data string
	)
	if err := r.Scan(&e.ID, &e.Type, &e.Source, &e.Subject, &at, &data, &e.TraceParent, &e.TraceState); err != nil {
		return Event{}, err
	}
	e.Time, e.Data = db.FromMicros(at).UTC(), []byte(data)
	return e, nil
}

// Querier runs queries: a *db.Tx or the read pool.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ErrNotFound is returned by Get for an unknown id.
var ErrNotFound = errors.New("events: no such event")

// Get returns the event with id.
func Get(ctx context.Context, q Querier, id string) (Event, error) {
	e, err := Scan(q.QueryRowContext(ctx, `SELECT `+Columns+` FROM events WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("events: get %s: %w", id, err)
	}
	return e, nil
}

// Filter selects events for List.
type Filter struct {
	Types    []string  // none: every type
	From, To time.Time // time in [From, To); zero: unbounded
	Subject  string    // empty: any
	Limit    int       // default and most 1000
}

// List returns the events Filter selects, in time order.
func List(ctx context.Context, q Querier, f Filter) ([]Event, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if len(f.Types) > 0 {
		ph := make([]string, len(f.Types))
		for i, t := range f.Types {
			ph[i] = arg(t)
		}
		where = append(where, "type IN ("+strings.Join(ph, ", ")+")")
	}
	if !f.From.IsZero() {
		where = append(where, "time >= "+arg(db.Micros(f.From)))
	}
	if !f.To.IsZero() {
		where = append(where, "time < "+arg(db.Micros(f.To)))
	}
	if f.Subject != "" {
		where = append(where, "subject = "+arg(f.Subject))
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	query := `SELECT ` + Columns + ` FROM events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY time, id LIMIT ` + arg(f.Limit)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("events: list: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := Scan(rows)
		if err != nil {
			return nil, fmt.Errorf("events: list: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: list: %w", err)
	}
	return out, nil
}
