package loyalty

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Balances and statements as of a date (issue 21).
//
// Every ledger transaction has two times: when it was booked (created_at)
// and when it takes effect (effective_at, NULL unless an admin backdated an
// adjustment; then it is earlier than created_at). "As of T" always means
// by effective time: the balance as of T is the sum of the member account's
// postings whose transaction took effect at or before T. A backdated
// correction exists to say what the balance should have been, so that is
// the answer as_of gives; the statement shows both times on every entry, so
// what was known at T is still readable (entries whose created_at is after
// T were booked later). The liability report (liability.go) uses the same
// effective time, so a member's balance as of T and the report's closing
// figure at T agree.
//
// A member's as-of reads go through the member's postings by
// loyalty_postings_account (account, id) — the statement's own index — and
// their transactions by primary key: a read proportional to the member's
// history, never a scan of the ledger, and no new index on the write path.

// effectiveExpr is a posting's effective time, with p the posting and t its
// transaction.
const effectiveExpr = `COALESCE(t.effective_at, p.created_at)`

// effectiveTime is when an adjustment asked to take effect at (zero: now)
// does: never in the future.
func effectiveTime(at, now time.Time) (time.Time, error) {
	if at.IsZero() {
		return now, nil
	}
	at = at.UTC().Truncate(time.Microsecond)
	if at.After(now) {
		return time.Time{}, errs.Coded(errs.Unprocessable, "invalid_effective_at", "effective_at %s is in the future", at.Format(time.RFC3339Nano)).
			With("field", "effective_at")
	}
	return at, nil
}

// checkBackdate refuses an effective time before the member joined: there
// was no account to correct.
func checkBackdate(m Member, at time.Time) error {
	if at.Before(m.CreatedAt) {
		return errs.Coded(errs.Unprocessable, "invalid_effective_at", "effective_at %s is before the member joined (%s)",
			at.Format(time.RFC3339Nano), m.CreatedAt.Format(time.RFC3339Nano)).With("field", "effective_at")
	}
	return nil
}

// backdate marks transaction id as taking effect at at, when that is before
// now; a transaction taking effect when it is booked keeps effective_at NULL.
func backdate(ctx context.Context, tx *db.Tx, id string, at, now time.Time) error {
	if !at.Before(now) {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE loyalty_transactions SET effective_at = $1 WHERE id = $2`, db.Micros(at), id)
	return err
}

// ParseAsOf reads an as_of query value: RFC 3339, not after now.
func ParseAsOf(v string, now time.Time) (time.Time, error) {
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errs.Coded(errs.Invalid, "invalid_as_of", "as_of must be an RFC 3339 time, like 2026-03-01T00:00:00Z").With("field", "as_of")
	}
	at = at.UTC().Truncate(time.Microsecond)
	if at.After(now) {
		return time.Time{}, errs.Coded(errs.Invalid, "invalid_as_of", "as_of %s is in the future: the ledger does not know it yet", v).With("field", "as_of")
	}
	return at, nil
}

// BalanceAsOf is a member's ledger balance as of a time: what the member
// account's postings effective at or before it sum to (spendable plus held
// points: a hold moves no points between accounts).
type BalanceAsOf struct {
	MemberID string    `json:"member_id"`
	AsOf     time.Time `json:"as_of"`
	Points   int64     `json:"points"`
}

// balanceAtQuery sums an account's postings effective at or before $2: the
// account's postings by loyalty_postings_account, their transactions by
// primary key (TestAsOfReadsUseIndexes).
const balanceAtQuery = `SELECT COALESCE(SUM(p.amount), 0)
	FROM loyalty_postings p JOIN loyalty_transactions t ON t.id = p.transaction_id
	WHERE p.account = $1 AND ` + effectiveExpr + ` <= $2`

// BalanceAt returns the member's balance as of at (see BalanceAsOf).
func (s *Service) BalanceAt(ctx context.Context, memberID string, at time.Time) (BalanceAsOf, error) {
	if _, err := s.GetMember(ctx, memberID); err != nil {
		return BalanceAsOf{}, err
	}
	var points int64
	err := s.db.Read().QueryRowContext(ctx, balanceAtQuery, MemberAccount(memberID), db.Micros(at)).Scan(&points)
	if err != nil {
		return BalanceAsOf{}, internal("balance as of", err)
	}
	return BalanceAsOf{MemberID: memberID, AsOf: at, Points: points}, nil
}

const asOfCursorPrefix = "a1:"

func encodeAsOfCursor(eff, postingID int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s%d:%d", asOfCursorPrefix, eff, postingID))
}

func decodeAsOfCursor(c string) (eff, id int64, err error) {
	bad := errs.Coded(errs.Invalid, "invalid_cursor", "cursor is not one this API returned for this as_of").With("field", "cursor")
	b, derr := base64.RawURLEncoding.DecodeString(c)
	if derr != nil {
		return 0, 0, bad
	}
	rest, ok := strings.CutPrefix(string(b), asOfCursorPrefix)
	if !ok {
		return 0, 0, bad
	}
	a, z, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, 0, bad
	}
	eff, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(z, 10, 64)
	if err1 != nil || err2 != nil || id <= 0 {
		return 0, 0, bad
	}
	return eff, id, nil
}

// StatementAt returns a page of the member's movements as of at: those
// effective at or before it, newest effective first (ties in booking
// order). Each entry's BalanceAfter is the balance along effective time —
// the first entry's is the balance as of at — so a backdated adjustment sits
// where it takes effect and the balances after it include it. types filter
// the entries as for Statement; the balances still count every movement.
func (s *Service) StatementAt(ctx context.Context, memberID string, at time.Time, limit int, cursor string, types ...string) (Statement, error) {
	if limit == 0 {
		limit = DefaultStatementLimit
	}
	if limit < 1 || limit > MaxStatementLimit {
		return Statement{}, errs.Coded(errs.Invalid, "invalid_limit", "limit must be between 1 and %d", MaxStatementLimit).With("field", "limit")
	}
	// Past the last page: the newest position there is.
	curEff, curID := db.Micros(at)+1, int64(0)
	if cursor != "" {
		var err error
		if curEff, curID, err = decodeAsOfCursor(cursor); err != nil {
			return Statement{}, err
		}
	}
	if _, err := s.GetMember(ctx, memberID); err != nil {
		return Statement{}, err
	}
	// The running balance is a window sum over the member's postings in
	// effective order; the window needs every earlier posting, so the page
	// is cut after it.
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, amount, running, tid, type, breakdown, trace_id, created_at, eff FROM (
			SELECT p.id, p.amount, t.id AS tid, t.type, t.breakdown, t.trace_id, p.created_at, `+effectiveExpr+` AS eff,
				SUM(p.amount) OVER (ORDER BY `+effectiveExpr+`, p.id ROWS UNBOUNDED PRECEDING) AS running
			FROM loyalty_postings p JOIN loyalty_transactions t ON t.id = p.transaction_id
			WHERE p.account = $1 AND `+effectiveExpr+` <= $2
		) m
		WHERE (eff < $3 OR (eff = $3 AND id < $4))`+strings.Replace(typeFilter(types, 6), "t.type", "m.type", 1)+`
		ORDER BY eff DESC, id DESC LIMIT $5`, append([]any{MemberAccount(memberID), db.Micros(at), curEff, curID, limit + 1}, anys(types)...)...)
	if err != nil {
		return Statement{}, internal("statement as of", err)
	}
	defer rows.Close()
	st := Statement{Entries: []StatementEntry{}}
	type pos struct{ eff, id int64 }
	var at2 []pos
	for rows.Next() {
		var (
			e            StatementEntry
			id           int64
			bd           string
			created, eff int64
		)
		if err := rows.Scan(&id, &e.Points, &e.BalanceAfter, &e.TransactionID, &e.Type, &bd, &e.TraceID, &created, &eff); err != nil {
			return Statement{}, internal("statement as of", err)
		}
		if e.Type == TxVest { // as Statement shows it
			e.Type = TxEarn
		}
		e.Breakdown = json.RawMessage(bd)
		e.CreatedAt = db.FromMicros(created)
		e.EffectiveAt = db.FromMicros(eff)
		st.Entries = append(st.Entries, e)
		at2 = append(at2, pos{eff, id})
	}
	if err := rows.Err(); err != nil {
		return Statement{}, internal("statement as of", err)
	}
	if len(st.Entries) > limit {
		st.Entries = st.Entries[:limit]
		last := at2[limit-1]
		st.NextCursor = encodeAsOfCursor(last.eff, last.id)
	}
	return st, nil
}

func (s *Service) handleBalance(w http.ResponseWriter, r *http.Request) error {
	now := s.now().UTC()
	at := now
	if v := r.URL.Query().Get("as_of"); v != "" {
		var err error
		if at, err = ParseAsOf(v, now); err != nil {
			return err
		}
	}
	b, err := s.BalanceAt(r.Context(), r.PathValue("id"), at)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, b)
	return nil
}
