package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// A points hold, from place to capture or void:
//
//  1. PlaceHold moves points from the member's spendable balance to held and
//     writes a pending hold. No posting is written: the member account's
//     postings still hold the points, and so do its lots.
//  2. Either CaptureHold posts the hold — the points leave the member's
//     account for another in a transaction, the lots give them up
//     soonest-expiring first, the hold is captured — or VoidHold gives them
//     back to the spendable balance.
//
// Every step runs under the member's row lock: LockHold (or, before a
// capture, LockHoldForCapture) takes it for a hold known by id; FindHold
// reads a member with the hold of a reference, for an idempotent place.

// Hold statuses.
const (
	HoldPending  = "pending"
	HoldCaptured = "captured"
	HoldVoided   = "voided"
)

// Hold is a reservation of a member's points: the points leave the
// spendable balance at once but the ledger moves only at capture.
type Hold struct {
	ID            string
	MemberID      string
	Points        Points
	Reference     string
	Status        string
	TransactionID string // the capture's transaction, once captured
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// Placement is a hold to place.
type Placement struct {
	HoldID, MemberID, Reference string
	Points                      Points
	At, Expires                 time.Time
	// Guard is the caller's extra condition on the member's row (columns
	// unqualified): the hold is placed only if it holds.
	Guard Stmt
	// With is the caller's write done only if the hold is placed: an
	// INSERT … SELECT … WHERE $done, or an UPDATE … WHERE … AND $done.
	With *Stmt
}

// PlaceHold places a hold if the member can afford it: the member's update
// is guarded by balance >= 0 and balance >= points (and p.Guard), so it may
// run before the caller holds the member's row lock — the update takes it,
// and PostgreSQL re-checks the guard against the newest row. It returns the
// member's spendable balance afterwards, or false with nothing written when
// the guard fails or the member does not exist. A hold whose reference is
// taken fails on the unique reference.
func PlaceHold(ctx context.Context, tx *db.Tx, p Placement) (spendable Points, placed bool, err error) {
	if p.Points <= 0 {
		return 0, false, fmt.Errorf("ledger: a hold of %d points", p.Points)
	}
	return writesFor(tx).placeHold(ctx, tx, p)
}

// args returns the arguments every engine's hold statement takes, $1–$6,
// and the guard's condition numbered after them.
func (p Placement) args() ([]any, string) {
	args := []any{p.HoldID, p.MemberID, p.Points, p.Reference, db.Micros(p.At), db.Micros(p.Expires)}
	guard := ""
	if p.Guard.SQL != "" {
		guard = " AND " + p.Guard.at(len(args), "")
		args = append(args, p.Guard.Args...)
	}
	return args, guard
}

// Holder reads the caller's columns of a member's row (alias m) in the
// statement that reads a hold; Scan gets the row and must pass hold on to
// the row's Scan after its own destinations.
type Holder struct {
	Columns string
	Scan    func(row Scanner, hold ...any) error
}

// BalanceOf is a Holder that reads the member's balance into b.
func BalanceOf(b *Balance) Holder {
	return Holder{Columns: "m.balance, m.held", Scan: func(row Scanner, hold ...any) error {
		return row.Scan(append([]any{&b.Spendable, &b.Held}, hold...)...)
	}}
}

// FindHold reads a member (through holder) and the hold with reference, if
// any, in one statement, locking the member's row if lock (on PostgreSQL;
// SQLite's write transaction holds its one write lock already). It says
// whether a hold was found; of the hold only ID, MemberID, Points and
// Reference are read, which never change, so a hold found without the lock
// is current enough to replay. No member is ErrMemberNotFound.
func FindHold(ctx context.Context, tx *db.Tx, memberID, reference string, lock bool, holder Holder) (Hold, bool, error) {
	suffix := ""
	if lock {
		suffix = tx.Dialect().ForUpdateOf("m")
	}
	var (
		hid, hmember sql.NullString
		hpoints      sql.NullInt64
	)
	err := holder.Scan(tx.QueryRowContext(ctx, `SELECT `+holder.Columns+`, h.id, h.member_id, h.points
		FROM loyalty_members m LEFT JOIN loyalty_holds h ON h.reference = $2
		WHERE m.id = $1`+suffix, memberID, reference), &hid, &hmember, &hpoints)
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, false, ErrMemberNotFound
	}
	if err != nil || !hid.Valid {
		return Hold{}, false, err
	}
	return Hold{ID: hid.String, MemberID: hmember.String, Points: Points(hpoints.Int64), Reference: reference}, true, nil
}

const holdColumns = `h.id, h.member_id, h.points, h.reference, h.status, h.transaction_id, h.created_at, h.expires_at`

// holdScan scans a hold's holdColumns.
type holdScan struct {
	h                Hold
	txID             sql.NullString
	created, expires int64
}

func (s *holdScan) dest() []any {
	return []any{&s.h.ID, &s.h.MemberID, &s.h.Points, &s.h.Reference, &s.h.Status, &s.txID, &s.created, &s.expires}
}

func (s *holdScan) hold() Hold {
	s.h.TransactionID = s.txID.String
	s.h.CreatedAt, s.h.ExpiresAt = db.FromMicros(s.created), db.FromMicros(s.expires)
	return s.h
}

// LockHold locks the member owning a hold (reading it through holder), then
// reads the hold under that lock, so its status is current: every change to
// a member's holds, balance and postings happens under the member's row
// lock, in that one order. No hold is ErrHoldNotFound.
func LockHold(ctx context.Context, tx *db.Tx, holdID string, holder Holder) (Hold, error) {
	err := holder.Scan(tx.QueryRowContext(ctx, `SELECT `+holder.Columns+` FROM loyalty_members m
		WHERE m.id = (SELECT member_id FROM loyalty_holds WHERE id = $1)`+tx.ForUpdate(), holdID))
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, ErrHoldNotFound
	}
	if err != nil {
		return Hold{}, err
	}
	return GetHold(ctx, tx, holdID)
}

// LockHoldForCapture is LockHold in one statement, for a capture, which
// re-checks the hold's status itself. On PostgreSQL the hold is read as of
// the statement's start, so its status may be older than the lock (a hold
// pending then may be settled now); the rest of it never changes, and a
// captured or voided hold stays so.
func LockHoldForCapture(ctx context.Context, tx *db.Tx, holdID string, holder Holder) (Hold, error) {
	var s holdScan
	err := holder.Scan(tx.QueryRowContext(ctx, `SELECT `+holder.Columns+`, `+holdColumns+`
		FROM loyalty_holds h JOIN loyalty_members m ON m.id = h.member_id
		WHERE h.id = $1`+tx.Dialect().ForUpdateOf("m"), holdID), s.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, ErrHoldNotFound
	}
	if err != nil {
		return Hold{}, err
	}
	return s.hold(), nil
}

// GetHold reads a hold; no hold is ErrHoldNotFound.
func GetHold(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, holdID string) (Hold, error) {
	var s holdScan
	err := q.QueryRowContext(ctx, `SELECT `+holdColumns+` FROM loyalty_holds h WHERE h.id = $1`, holdID).Scan(s.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, ErrHoldNotFound
	}
	if err != nil {
		return Hold{}, err
	}
	return s.hold(), nil
}

// Capture is a hold to post.
type Capture struct {
	// Hold is the pending hold: its ID, MemberID, Points and Reference must
	// be right, its Status need not be current.
	Hold Hold
	// Before is the member's balance, read under the member's lock.
	Before Balance
	// TxID and Type name the capture's transaction; the points go to Account.
	TxID, Type, Account string
	// Describe returns the transaction's breakdown (JSON) given the lots the
	// capture took; on PostgreSQL it is called with a marker the statement
	// replaces with the lots it picks, so it must write lots as given.
	Describe       func(lots []LotUse) ([]byte, error)
	Actor, TraceID string
	At             time.Time
	// MemberSet is the caller's SET clause for the member's row beside
	// held; empty, it is updated_at = At.
	MemberSet Stmt
	// With is the caller's write done only if the hold is captured (see
	// Placement.With).
	With *Stmt
}

// CaptureHold posts a pending hold: the points leave the member's account
// for c.Account in a transaction of type c.Type (idempotency key
// "capture:<hold id>"), and the member's lots are consumed soonest-expiring
// first. The member's row is locked by the caller. It returns the member's
// spendable balance afterwards, or ErrHoldNotPending, having written nothing,
// when the hold is not pending.
func CaptureHold(ctx context.Context, tx *db.Tx, c Capture) (Points, error) {
	debit := LotDebit(c.Before.Ledger(), c.Hold.Points)
	if err := writesFor(tx).captureHold(ctx, tx, c, debit); err != nil {
		return 0, err
	}
	return c.Before.Spendable, nil
}

// postings are the capture's: member → c.Account.
func (c Capture) postings() []Posting {
	return []Posting{Member(c.Hold.MemberID, -c.Hold.Points, c.Before.Ledger()-c.Hold.Points), To(c.Account, c.Hold.Points)}
}

// VoidHold gives a pending hold's points back to the spendable balance; the
// caller holds the member's row lock. A hold no longer pending is
// ErrHoldNotPending, and nothing is written.
func VoidHold(ctx context.Context, tx *db.Tx, h Hold, at time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE loyalty_holds SET status = 'voided', updated_at = $2 WHERE id = $1 AND status = 'pending'`, h.ID, db.Micros(at))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrHoldNotPending
	}
	_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, held = held - $2, updated_at = $3 WHERE id = $1`,
		h.MemberID, h.Points, db.Micros(at))
	return err
}
