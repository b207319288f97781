package loyalty

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Statement page sizes.
const (
	DefaultStatementLimit = 50
	MaxStatementLimit     = 200
)

// StatementEntry is one movement on a member's account.
type StatementEntry struct {
	TransactionID string `json:"transaction_id"`
	Type          string `json:"type"`
	Points        int64  `json:"points"`
	// BalanceAfter is the member's ledger balance after the movement: the
	// spendable balance plus points reserved by pending holds. Each entry's
	// BalanceAfter minus its Points is the next (older) entry's BalanceAfter.
	BalanceAfter int64           `json:"balance_after"`
	Breakdown    json.RawMessage `json:"breakdown"`
	TraceID      string          `json:"trace_id"`
	// CreatedAt is when the movement was booked; EffectiveAt when it takes
	// effect: the same, except for a backdated adjustment (asof.go).
	CreatedAt   time.Time `json:"created_at"`
	EffectiveAt time.Time `json:"effective_at"`
}

// Statement is one page of a member's movements, newest first.
type Statement struct {
	Entries []StatementEntry `json:"entries"`
	// NextCursor fetches the next (older) page; empty on the last page.
	NextCursor string `json:"next_cursor"`
	// Pending are the member's points waiting to vest, soonest first, on
	// the first page of the HTTP statement (pending.go); they are on no
	// account of the member's yet, so no entry shows them until they vest.
	Pending []PendingLot `json:"pending,omitempty"`
}

const cursorPrefix = "p1:"

func encodeCursor(postingID int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(postingID, 10)))
}

func decodeCursor(c string) (int64, error) {
	bad := errs.Coded(errs.Invalid, "invalid_cursor", "cursor is not one this API returned").With("field", "cursor")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, bad
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return 0, bad
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		return 0, bad
	}
	return id, nil
}

// Statement returns a page of the member's movements, newest first. The
// cursor is a position in the member's postings, so pages stay stable while
// new movements arrive.
//
// types, when given, keep only the movements of those transaction types
// (statementTypes checks them).
func (s *Service) Statement(ctx context.Context, memberID string, limit int, cursor string, types ...string) (Statement, error) {
	if limit == 0 {
		limit = DefaultStatementLimit
	}
	if limit < 1 || limit > MaxStatementLimit {
		return Statement{}, errs.Coded(errs.Invalid, "invalid_limit", "limit must be between 1 and %d", MaxStatementLimit).With("field", "limit")
	}
	before := int64(1<<63 - 1)
	if cursor != "" {
		var err error
		if before, err = decodeCursor(cursor); err != nil {
			return Statement{}, err
		}
	}
	if _, err := s.GetMember(ctx, memberID); err != nil {
		return Statement{}, err
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT p.id, p.amount, p.balance_after, t.id, t.type, t.breakdown, t.trace_id, t.created_at, `+effectiveExpr+`
		FROM loyalty_postings p JOIN loyalty_transactions t ON t.id = p.transaction_id
		WHERE p.account = $1 AND p.id < $2`+typeFilter(types, 4)+`
		ORDER BY p.id DESC LIMIT $3`, append([]any{MemberAccount(memberID), before, limit + 1}, anys(types)...)...)
	if err != nil {
		return Statement{}, internal("statement", err)
	}
	defer rows.Close()
	st := Statement{Entries: []StatementEntry{}}
	var ids []int64
	for rows.Next() {
		var (
			e       StatementEntry
			id      int64
			bd      string
			created int64
			eff     int64
		)
		if err := rows.Scan(&id, &e.Points, &e.BalanceAfter, &e.TransactionID, &e.Type, &bd, &e.TraceID, &created, &eff); err != nil {
			return Statement{}, internal("statement", err)
		}
		if e.Type == TxVest { // pended points arriving: an earning's, to the reader
			e.Type = TxEarn
		}
		e.Breakdown = json.RawMessage(bd)
		e.CreatedAt = db.FromMicros(created)
		e.EffectiveAt = db.FromMicros(eff)
		st.Entries = append(st.Entries, e)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return Statement{}, internal("statement", err)
	}
	if len(st.Entries) > limit {
		st.Entries = st.Entries[:limit]
		st.NextCursor = encodeCursor(ids[limit-1])
	}
	return st, nil
}
