// Package ledger is Godwit's double-entry points ledger: accounts, postings,
// transactions, balances, lots and holds, and the checks that the books add
// up. It knows accounts, points and references, nothing of what earned or
// spent them: the loyalty service decides, the ledger books.
//
// The books live in loyalty_transactions and loyalty_postings (every
// transaction's postings sum to zero), loyalty_lots (what a member's points
// are made of, consumed soonest-expiring first) and loyalty_holds (points
// reserved for a debit that may still fail). A member's cached spendable
// balance and held points are the balance and held columns of the member's
// row in loyalty_members: the member account's postings always sum to
// balance + held.
//
// Every change of a member's points happens in the caller's transaction
// under the member's row lock; the ledger writes, the caller holds the lock.
// A caller may attach writes of its own to a ledger write (Stmt): on
// PostgreSQL they run in the same statement, so a hold with its redemption
// row, or a capture with its settled transfer, is one round trip.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Points is an amount of points: positive credits an account, negative
// debits it.
type Points int64

// The program's own accounts.
const (
	// Issuance is where earned points come from and reversed or adjusted
	// points go back to: the program's liability.
	Issuance = "program:issuance"
	// Redemption receives spent points (redemptions, checkout captures) and
	// gives back refunded ones.
	Redemption = "sink:redemption"
	// Expiry receives expired points: the program's breakage.
	Expiry = "sink:expiry"
)

// MemberAccount is the ledger account of a member.
func MemberAccount(memberID string) string { return "member:" + memberID }

// PartnerAccount is the clearing account of a transfer partner.
func PartnerAccount(partnerID string) string { return "partner:" + partnerID }

// Errors the ledger answers with when what it was asked about does not exist
// or is no longer in the state asked for.
var (
	ErrMemberNotFound = errors.New("ledger: member not found")
	ErrHoldNotFound   = errors.New("ledger: hold not found")
	// ErrHoldNotPending is CaptureHold's answer when the hold was voided or
	// captured already; nothing was written.
	ErrHoldNotPending = errors.New("ledger: hold is not pending")
)

// NewID returns a new time-ordered id for a transaction, lot or hold.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// Scanner is a row to scan: *sql.Row or *sql.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Querier runs statements: a *db.Tx, or the *sql.Tx of a read snapshot.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Stmt is a piece of SQL of the caller's own that a ledger write carries:
// an extra condition or SET clause on the member's row, or a whole write
// (an INSERT … SELECT or an UPDATE) done with the ledger's. Its parameters
// are numbered from $1 in Args, cast for PostgreSQL ($1::text); the ledger
// renumbers them and drops the casts on SQLite. In a conditional write,
// $done stands for "the ledger's write happened".
type Stmt struct {
	SQL  string
	Args []any
}

var paramRef = regexp.MustCompile(`\$[0-9]+`)

// at returns s.SQL with its parameters moved after the first n, and done
// put for $done.
func (s Stmt) at(n int, done string) string {
	q := strings.ReplaceAll(s.SQL, "$done", done)
	if n == 0 {
		return q
	}
	return paramRef.ReplaceAllStringFunc(q, func(p string) string {
		var i int
		fmt.Sscanf(p[1:], "%d", &i)
		return fmt.Sprintf("$%d", i+n)
	})
}

// sqliteCasts drops PostgreSQL's parameter casts, which SQLite does not parse.
var sqliteCasts = strings.NewReplacer("::text", "", "::bigint", "", "::integer", "")

// NoCasts returns q without PostgreSQL's parameter casts, as SQLite takes it.
func NoCasts(q string) string { return sqliteCasts.Replace(q) }

// writes books the ledger's hot multi-table writes — a credit, a hold, a
// capture — the way the engine does them fastest; everything the writes
// decide is decided before they are called, the same on both engines. On
// PostgreSQL (writes_postgres.go) each is one statement of data-modifying
// CTEs: one network round trip where the sequence would take four to seven,
// with the member's row locked from its first statement to the commit. On
// SQLite (writes_sqlite.go), which has no data-modifying CTEs and no network,
// each is a sequence of plain statements.
type writes interface {
	credit(ctx context.Context, tx *db.Tx, c Credit) error
	placeHold(ctx context.Context, tx *db.Tx, p Placement) (spendable Points, placed bool, err error)
	captureHold(ctx context.Context, tx *db.Tx, c Capture, debit Points) error
}

// writesFor returns the writer for tx's engine.
func writesFor(tx *db.Tx) writes {
	if tx.Dialect().WritableCTEs() {
		return pgWrites{}
	}
	return sqliteWrites{}
}
