package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Posting is one account's side of a transaction. A member account's
// posting carries the account's balance after it (the statement shows it);
// the program's and partners' accounts have no running balance.
type Posting struct {
	Account      string
	Amount       Points
	BalanceAfter *Points
}

// Member is a posting to a member's account, whose balance is after once posted.
func Member(memberID string, amount, after Points) Posting {
	return Posting{Account: MemberAccount(memberID), Amount: amount, BalanceAfter: &after}
}

// To is a posting to an account without a running balance.
func To(account string, amount Points) Posting {
	return Posting{Account: account, Amount: amount}
}

// Transaction is a ledger transaction: what happened (Type, and a
// Breakdown explaining it, as JSON), whose it is (MemberID), who did it and
// under which trace, and its postings, which must sum to zero. Key, when
// set, is unique: a second transaction with it fails, so a request retried
// books once.
type Transaction struct {
	ID, Type, MemberID, Key string
	Breakdown               string
	Actor, TraceID          string
	At                      time.Time
	Postings                []Posting
}

// balanced checks that the postings sum to zero.
func (t Transaction) balanced() error {
	var sum Points
	for _, p := range t.Postings {
		sum += p.Amount
	}
	if sum != 0 {
		return fmt.Errorf("ledger: %s transaction postings sum to %d, not 0", t.Type, sum)
	}
	return nil
}

// Post writes a transaction and its postings, refusing postings that do not
// sum to zero.
func Post(ctx context.Context, tx *db.Tx, t Transaction) error {
	if err := t.balanced(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO loyalty_transactions (id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, t.ID, t.Type, t.MemberID, nullable(t.Key), t.Breakdown, t.Actor, t.TraceID, db.Micros(t.At)); err != nil {
		return err
	}
	if len(t.Postings) == 0 {
		return nil
	}
	// All postings in one statement.
	var q strings.Builder
	q.WriteString(`INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at) VALUES `)
	args := []any{t.ID, db.Micros(t.At)}
	for i, p := range t.Postings {
		var after sql.NullInt64
		if p.BalanceAfter != nil {
			after = sql.NullInt64{Int64: int64(*p.BalanceAfter), Valid: true}
		}
		if i > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "($1, $%d, $%d, $%d, $2)", n+1, n+2, n+3)
		args = append(args, p.Account, p.Amount, after)
	}
	_, err := tx.ExecContext(ctx, q.String(), args...)
	return err
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// Credit is a transaction that credits a member's account from another
// account (From) with everything it changes: the postings, a lot of what
// does not repay a debt (LotCredit), the member's balance, and the caller's
// own writes (With), all in one statement on PostgreSQL. Before is the
// member's balance before the credit, read under the member's lock.
type Credit struct {
	ID, Type, MemberID, Key string
	Breakdown               string
	Actor, TraceID          string
	At                      time.Time
	From                    string
	Points                  Points
	Before                  Balance
	// LotID names the lot the credit forms, which expires at LotExpires.
	LotID      string
	LotExpires time.Time
	// MemberSet is the caller's SET clause for the member's row beside the
	// balance; empty, it is updated_at = At.
	MemberSet Stmt
	// With are the caller's writes, done after the ledger's.
	With []Stmt
}

// PostCredit books a credit (see Credit).
func PostCredit(ctx context.Context, tx *db.Tx, c Credit) error {
	if c.Points < 0 {
		return fmt.Errorf("ledger: a credit of %d points", c.Points)
	}
	return writesFor(tx).credit(ctx, tx, c)
}

// ledgerAfter is the member account's balance after the credit.
func (c Credit) ledgerAfter() Points { return c.Before.Ledger() + c.Points }

// lotPoints is how much of the credit forms a lot: a debt is repaid first.
func (c Credit) lotPoints() Points { return LotCredit(c.Before.Ledger(), c.Points) }

// memberSet is the caller's SET clause, or the default.
func memberSet(s Stmt, at time.Time) Stmt {
	if s.SQL == "" {
		return Stmt{SQL: "updated_at = $1::bigint", Args: []any{db.Micros(at)}}
	}
	return s
}
