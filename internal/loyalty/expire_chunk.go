package loyalty

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// rowsPerStatement bounds multi-row statements. PostgreSQL gains from few
// round trips (its limit is 65,535 parameters). The pure-Go SQLite driver binds
// each parameter by looking up its name in a list, which is quadratic in a
// statement's parameters, so there short statements are cheaper; the calls are
// in-process anyway.
func rowsPerStatement(e db.Engine) int {
	if e == db.Postgres {
		return 500
	}
	return 50
}

// memberExpiry is what a chunk did for one member.
type memberExpiry struct {
	id     string
	points int64
	uses   []LotUse
	after  int64 // the member account's balance after the expiry posting
}

// expireChunk expires the points of the members ids in one transaction with
// a handful of set-based statements: the members are locked in id order (the
// order every multi-member transaction locks in), their lots read in one
// query, and the lot updates, ledger transactions, postings and balances
// written as multi-row statements. The rules are expireMember's; the saving
// is one commit and a few round trips for hundreds of members instead of
// several round trips and a commit each. Each member still gets its
// loyalty.expire_member_points span, spanning the transaction that expired it.
func (s *Service) expireChunk(ctx context.Context, ids []string, now time.Time) ([]memberExpiry, error) {
	start := time.Now()
	var done []memberExpiry
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		done, err = s.expireChunkTx(ctx, tx, ids, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	end := time.Now()
	byID := make(map[string]int64, len(done))
	var total int64
	for _, e := range done {
		byID[e.id] = e.points
		total += e.points
	}
	for _, id := range ids {
		_, span := s.tracer.Start(ctx, "loyalty.expire_member_points", trace.WithTimestamp(start), trace.WithAttributes(
			attribute.String("loyalty.member_id", id),
			attribute.Int64("loyalty.points_expiring", byID[id]),
			attribute.Int("loyalty.expiry_chunk_size", len(ids)),
		))
		span.End(trace.WithTimestamp(end))
	}
	if total > 0 && s.expired != nil {
		s.expired.Add(ctx, total, metric.WithAttributes(attribute.String("loyalty.expiry_policy", s.prog.Expiry.Policy)))
	}
	return done, nil
}

func (s *Service) expireChunkTx(ctx context.Context, tx *db.Tx, ids []string, now time.Time) ([]memberExpiry, error) {
	members, err := lockMembers(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	// Who can lose points at all: spendable balance, and under the inactivity
	// policy an inactivity deadline that has passed.
	var due []string
	avail := make(map[string]int64, len(members))
	for _, m := range members {
		if m.Balance <= 0 {
			continue
		}
		if s.prog.Expiry.Policy != program.ExpiryLot {
			last := m.LastActivityAt
			if last.IsZero() {
				last = m.CreatedAt
			}
			if !program.IsExpired(s.prog.InactivityExpiry(last), now) {
				continue
			}
		}
		due = append(due, m.ID)
		avail[m.ID] = m.Balance
	}
	if len(due) == 0 {
		return nil, nil
	}

	// Lots in the order expiry consumes them, soonest-expiring first.
	in, args := db.InList(1, due)
	q := `SELECT member_id, id, remaining FROM loyalty_lots WHERE member_id IN (` + in + `) AND remaining > 0`
	if s.prog.Expiry.Policy == program.ExpiryLot {
		q += fmt.Sprintf(` AND expires_at <= $%d`, len(due)+1)
		args = append(args, db.Micros(now))
	}
	rows, err := tx.QueryContext(ctx, q+` ORDER BY member_id, expires_at, earned_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read lots: %w", err)
	}
	byMember := make(map[string]*memberExpiry, len(due))
	var order []*memberExpiry
	for rows.Next() {
		var memberID string
		var u LotUse
		var remaining int64
		if err := rows.Scan(&memberID, &u.LotID, &remaining); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read lots: %w", err)
		}
		e := byMember[memberID]
		if e == nil {
			e = &memberExpiry{id: memberID}
			byMember[memberID] = e
			order = append(order, e)
		}
		left := avail[memberID] - e.points
		if left <= 0 {
			continue
		}
		u.Points = min(remaining, left)
		e.points += u.Points
		e.uses = append(e.uses, u)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("read lots: %w", err)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, nil
	}

	pending := make(map[string]int64, len(members))
	for _, m := range members {
		pending[m.ID] = m.Balance + m.Pending
	}
	done := make([]memberExpiry, 0, len(order))
	for _, e := range order {
		e.after = pending[e.id] - e.points
		done = append(done, *e)
	}
	if err := s.writeExpiries(ctx, tx, done, now); err != nil {
		return nil, err
	}
	return done, nil
}

// writeExpiries writes the lot updates, ledger transactions with their two
// postings, and the balances of a chunk's expiries, a few hundred rows a statement.
func (s *Service) writeExpiries(ctx context.Context, tx *db.Tx, done []memberExpiry, now time.Time) error {
	at := db.Micros(now)
	actor, traceID := actorOf(ctx), traceIDOf(ctx)
	var lots, txs, postings, balances [][]any
	for _, e := range done {
		for _, u := range e.uses {
			lots = append(lots, []any{u.LotID, u.Points})
		}
		bd, err := json.Marshal(Breakdown{Policy: s.prog.Expiry.Policy, Lots: e.uses})
		if err != nil {
			return err
		}
		id := newID()
		txs = append(txs, []any{id, TxExpire, e.id, string(bd), actor, traceID, at})
		postings = append(postings,
			[]any{id, MemberAccount(e.id), -e.points, e.after, at},
			[]any{id, AccountExpiry, e.points, nil, at})
		balances = append(balances, []any{e.id, e.points})
	}
	stmts := []struct {
		rows   [][]any
		types  []string
		prefix string
		suffix string
	}{
		{lots, []string{"TEXT", "BIGINT"}, `WITH v (id, points) AS (VALUES `,
			`) UPDATE loyalty_lots SET remaining = remaining - v.points FROM v WHERE loyalty_lots.id = v.id`},
		{txs, []string{"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT"},
			`INSERT INTO loyalty_transactions (id, type, member_id, breakdown, actor, trace_id, created_at) VALUES `, ``},
		{postings, []string{"TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT"},
			`INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at) VALUES `, ``},
		{balances, []string{"TEXT", "BIGINT"}, `WITH v (id, points) AS (VALUES `,
			fmt.Sprintf(`) UPDATE loyalty_members SET balance = balance - v.points, updated_at = %d FROM v WHERE loyalty_members.id = v.id`, at)},
	}
	for _, st := range stmts {
		per := rowsPerStatement(tx.Engine())
		for i := 0; i < len(st.rows); i += per {
			part := st.rows[i:min(i+per, len(st.rows))]
			args := make([]any, 0, len(part)*len(st.types))
			for _, r := range part {
				args = append(args, r...)
			}
			if _, err := tx.ExecContext(ctx, st.prefix+typedValues(len(part), st.types)+st.suffix, args...); err != nil {
				return fmt.Errorf("write expiries: %w", err)
			}
		}
	}
	return nil
}

// lockMembers reads and locks the members ids in id order; ids that do not
// exist are left out.
func lockMembers(ctx context.Context, tx *db.Tx, ids []string) ([]Member, error) {
	in, args := db.InList(1, ids)
	rows, err := tx.QueryContext(ctx, `SELECT `+memberColumns+` FROM loyalty_members WHERE id IN (`+in+`) ORDER BY id`+tx.ForUpdate(), args...)
	if err != nil {
		return nil, fmt.Errorf("lock members: %w", err)
	}
	defer rows.Close()
	var ms []Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, fmt.Errorf("lock members: %w", err)
		}
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// typedValues returns n VALUES rows of len(types) parameters, each cast to
// its type so PostgreSQL need not guess (CAST reads the same on SQLite).
func typedValues(n int, types []string) string {
	var b strings.Builder
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, t := range types {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "CAST($%d AS %s)", p, t)
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}
