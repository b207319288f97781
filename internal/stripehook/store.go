package stripehook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Event states.
const (
	statePending   = "pending"
	stateProcessed = "processed"
	stateIgnored   = "ignored"
)

const eventColumns = `id, type, object_id, charge_id, godwit, currency, amount, amount_refunded, object_status, state, outcome,
	attempts, event_created, received_at`

func scanEvent(sc interface{ Scan(...any) error }) (event, error) {
	var e event
	var created, received int64
	err := sc.Scan(&e.ID, &e.Type, &e.ObjectID, &e.ChargeID, &e.Godwit, &e.Currency, &e.Amount, &e.AmountRefunded, &e.ObjectStatus,
		&e.State, &e.Outcome, &e.Attempts, &created, &received)
	e.Created, e.Received = db.FromMicros(created), db.FromMicros(received)
	return e, err
}

// insert stores e unless an event with its id is stored already; it reports
// whether this call stored it.
func (s *Service) insert(ctx context.Context, e event) (bool, error) {
	var stored bool
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := db.Micros(e.Received)
		res, err := tx.ExecContext(ctx, `INSERT INTO stripe_events (id, type, object_id, charge_id, godwit, currency, amount, amount_refunded,
			object_status, state, event_created, received_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)
			ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Type, e.ObjectID, e.ChargeID, e.Godwit, e.Currency, e.Amount, e.AmountRefunded, e.ObjectStatus, db.Micros(e.Created), now)
		if err != nil {
			return fmt.Errorf("stripehook: store event %s: %w", e.ID, err)
		}
		n, _ := res.RowsAffected()
		stored = n == 1
		return nil
	})
	return stored, err
}

// get reads a stored event.
func (s *Service) get(ctx context.Context, id string) (event, error) {
	e, err := scanEvent(s.cfg.DB.Read().QueryRowContext(ctx, `SELECT `+eventColumns+` FROM stripe_events WHERE id = $1`, id))
	if err != nil {
		return event{}, fmt.Errorf("stripehook: read event %s: %w", id, err)
	}
	return e, nil
}

// claim takes a pending event for one processing attempt under token, unless
// another attempt holds it or it is not due (due: a retry's wait is over;
// the request that stored it passes due = false to process it at once). It
// returns the event and whether this call holds it.
func (s *Service) claim(ctx context.Context, id, token string, due bool) (event, bool, error) {
	var e event
	var held bool
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := s.cfg.Now()
		q := `UPDATE stripe_events SET claim_token = $2, claimed_until = $3, attempts = attempts + 1
			WHERE id = $1 AND state = 'pending' AND claimed_until < $4`
		if due {
			q += ` AND next_attempt_at <= $4`
		}
		res, err := tx.ExecContext(ctx, q, id, token, db.Micros(now.Add(s.cfg.Claim)), db.Micros(now))
		if err != nil {
			return fmt.Errorf("stripehook: claim event %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		held = true
		e, err = scanEvent(tx.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM stripe_events WHERE id = $1`, id))
		if err != nil {
			return fmt.Errorf("stripehook: claim event %s: %w", id, err)
		}
		return nil
	})
	return e, held, err
}

// finish records the outcome of the attempt holding token: the event ends
// (processed or ignored), or it waits until retryAt with lastError. It
// reports whether the claim was still held (an attempt that outlived its
// claim records nothing: the attempt that took it over decides).
func (s *Service) finish(ctx context.Context, id, token, state, outcome, lastError string, retryAt time.Time) (bool, error) {
	var held bool
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := db.Micros(s.cfg.Now())
		var res sql.Result
		var err error
		if state == statePending {
			res, err = tx.ExecContext(ctx, `UPDATE stripe_events SET claim_token = '', claimed_until = 0, next_attempt_at = $3, last_error = $4,
				outcome = $5 WHERE id = $1 AND claim_token = $2 AND state = 'pending'`, id, token, db.Micros(retryAt), lastError, outcome)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE stripe_events SET claim_token = '', claimed_until = 0, state = $3, outcome = $4, last_error = $5,
				processed_at = $6 WHERE id = $1 AND claim_token = $2 AND state = 'pending'`, id, token, state, outcome, lastError, now)
		}
		if err != nil {
			return fmt.Errorf("stripehook: record event %s: %w", id, err)
		}
		n, _ := res.RowsAffected()
		held = n == 1
		return nil
	})
	return held, err
}

// due returns up to limit pending events whose retry is due and that no
// attempt holds.
func (s *Service) due(ctx context.Context, limit int) ([]string, error) {
	now := db.Micros(s.cfg.Now())
	rows, err := s.cfg.DB.Read().QueryContext(ctx, `SELECT id FROM stripe_events WHERE state = 'pending' AND next_attempt_at <= $1
		AND claimed_until < $1 ORDER BY next_attempt_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("stripehook: due events: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("stripehook: due events: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Event is a stored Stripe event, for tests and operators.
type Event struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	ChargeID    string    `json:"charge_id"`
	State       string    `json:"state"`
	Outcome     string    `json:"outcome"`
	Attempts    int       `json:"attempts"`
	ReceivedAt  time.Time `json:"received_at"`
	ProcessedAt time.Time `json:"processed_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// Events lists stored events, newest first (limit 1–500).
func (s *Service) Events(ctx context.Context, limit int) ([]Event, error) {
	limit = max(1, min(limit, 500))
	rows, err := s.cfg.DB.Read().QueryContext(ctx, `SELECT id, type, charge_id, state, outcome, attempts, received_at, processed_at, last_error
		FROM stripe_events ORDER BY received_at DESC, id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("stripehook: list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var received, processed int64
		if err := rows.Scan(&e.ID, &e.Type, &e.ChargeID, &e.State, &e.Outcome, &e.Attempts, &received, &processed, &e.LastError); err != nil {
			return nil, fmt.Errorf("stripehook: list events: %w", err)
		}
		e.ReceivedAt = db.FromMicros(received)
		if processed > 0 {
			e.ProcessedAt = db.FromMicros(processed)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// errNotHeld: the attempt's claim was taken over before it recorded its outcome.
var errNotHeld = errors.New("stripehook: the event's claim was lost")
