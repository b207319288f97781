package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// expirySQL holds the statements of a chunk's expiry for one engine. They
// take their rows as JSON arrays of arrays, one parameter each, unpacked by
// the engine's JSON table function, so a statement's text and its few
// parameters are the same whatever the chunk's size: one prepared statement,
// no thousands of placeholders to bind (the pure-Go SQLite driver binds
// parameters by name, quadratic in their number), and each statement does
// the whole chunk. newExpirySQL is the one place the engines differ: the JSON
// table function, the row-lock suffix, and the writes, which PostgreSQL does
// in one statement (data-modifying CTEs: one round trip, the rows parsed
// once) and SQLite, which has no such CTEs, in four.
type expirySQL struct {
	// lockMembers reads and locks the members in $1 ([[id], …]) in id order;
	// readMembers reads them without locking, for a dry run.
	lockMembers, readMembers string
	// lots reads the remaining lots of the members in $1 ([[id], …]),
	// soonest-expiring first; lotsDue only those expired at $2.
	lots, lotsDue string
	// writes apply a chunk's expiries: the lots taken, a ledger transaction
	// with its two postings per member, and the members' balances.
	writes []expiryWrite
}

// expiryWrite is a statement of expirySQL.writes: its parameters $1, $2, …
// are the chunk's expiryArgs named by args, in that order.
type expiryWrite struct {
	name, query string
	args        []int
}

// The arguments a chunk's writes take (expiryWrite.args).
const (
	// argTxs is the JSON rows of the ledger transactions, one per member who
	// loses points: [transaction id, member id, breakdown].
	argTxs = iota
	// argMoves is the JSON rows of the same members' debits: [transaction
	// id, member id, member account, points, balance after]. The breakdowns,
	// most of the bytes, are apart so the statements that need only the
	// debits do not unpack them.
	argMoves
	// argLots is the JSON rows of the lots taken from: [lot id, points].
	argLots
	argType    // the transactions' type
	argActor   // the transactions' actor
	argTraceID // the transactions' trace id
	argAt      // the instant expired at, in microseconds
	argSink    // the expiry sink account
	nExpiryArgs
)

func newExpirySQL(d db.Dialect) expirySQL {
	// rows(n) is the FROM item that yields one row, value, per element of $n.
	rows := d.JSONArrayRows
	lots := `SELECT member_id, id, remaining FROM loyalty_lots
		WHERE member_id IN (SELECT value->>0 FROM ` + rows(1) + `) AND remaining > 0`
	const lotOrder = ` ORDER BY member_id, expires_at, earned_at, id`
	members := `SELECT id, balance, held, last_activity_at, created_at FROM loyalty_members
			WHERE id IN (SELECT value->>0 FROM ` + rows(1) + `) ORDER BY id`
	q := expirySQL{
		lockMembers: members + d.ForUpdate(),
		readMembers: members,
		lots:        lots + lotOrder,
		lotsDue:     lots + ` AND expires_at <= $2` + lotOrder,
	}
	txs := func(n int) string {
		return `SELECT value->>0 AS tx_id, value->>1 AS member_id, value->>2 AS breakdown FROM ` + rows(n)
	}
	moves := func(n int) string {
		return `SELECT value->>0 AS tx_id, value->>1 AS member_id, value->>2 AS account,
			CAST(value->>3 AS BIGINT) AS points, CAST(value->>4 AS BIGINT) AS after FROM ` + rows(n)
	}
	takeLots := func(n int) string {
		return `UPDATE loyalty_lots SET remaining = remaining - u.points
			FROM (SELECT value->>0 AS id, CAST(value->>1 AS BIGINT) AS points FROM ` + rows(n) + `) u
			WHERE loyalty_lots.id = u.id`
	}
	// Two postings per debit, the member's and the sink's, from one pass
	// over the rows.
	const (
		insertTxs = `INSERT INTO loyalty_transactions (id, type, member_id, breakdown, actor, trace_id, created_at)
			SELECT t.tx_id, $%[1]d, t.member_id, t.breakdown, $%[2]d, $%[3]d, $%[4]d FROM %[5]s`
		insertPostings = `INSERT INTO loyalty_postings (transaction_id, account, amount, balance_after, created_at)
			SELECT v.tx_id,
				CASE s.side WHEN 0 THEN v.account ELSE CAST($%[2]d AS TEXT) END,
				CASE s.side WHEN 0 THEN -v.points ELSE v.points END,
				CASE s.side WHEN 0 THEN v.after END,
				CAST($%[1]d AS BIGINT)
			FROM %[3]s CROSS JOIN (SELECT 0 AS side UNION ALL SELECT 1) s`
		debitMembers = `UPDATE loyalty_members SET balance = balance - v.points, updated_at = $%[1]d
			FROM %[2]s WHERE loyalty_members.id = v.member_id`
	)
	if d.WritableCTEs() {
		q.writes = []expiryWrite{{"expiries", `WITH v AS MATERIALIZED (` + moves(1) + `),
			lots AS (` + takeLots(2) + `),
			txs AS (` + fmt.Sprintf(insertTxs, 4, 5, 6, 7, "("+txs(3)+") t") + `),
			postings AS (` + fmt.Sprintf(insertPostings, 7, 8, "v") + `)
			` + fmt.Sprintf(debitMembers, 7, "v"),
			[]int{argMoves, argLots, argTxs, argType, argActor, argTraceID, argAt, argSink}}}
		return q
	}
	v := "(" + moves(1) + ") v"
	q.writes = []expiryWrite{
		{"lots", takeLots(1), []int{argLots}},
		{"transactions", fmt.Sprintf(insertTxs, 2, 3, 4, 5, "("+txs(1)+") t"), []int{argTxs, argType, argActor, argTraceID, argAt}},
		{"postings", fmt.Sprintf(insertPostings, 2, 3, v), []int{argMoves, argAt, argSink}},
		{"balances", fmt.Sprintf(debitMembers, 2, v), []int{argMoves, argAt}},
	}
	return q
}

// expiryCandidate is what a chunk knows and decides about one candidate.
type expiryCandidate struct {
	avail  int64 // spendable points that may expire; 0 when none may
	total  int64 // balance + held: the member account's ledger balance
	points int64 // points expired
}

// expiryLotUse is a lot a chunk takes points from, for candidate member.
type expiryLotUse struct {
	member int
	lot    string
	points int64
}

// chunkExpiry is one chunk's run: its candidates, in the order read, and
// what expired.
type chunkExpiry struct {
	ids      []string
	index    map[string]int // candidate id → its position in ids
	members  []expiryCandidate
	uses     []expiryLotUse // grouped by member, in the order they expire
	affected int
	total    int64
}

// expireChunk expires the points of the members ids in one transaction with
// a handful of set-based statements (expirySQL): the members are locked in id
// order (the order every multi-member transaction locks in), their lots read
// after the locks are held, and the lot updates, ledger transactions,
// postings and balances written for the whole chunk at once (one statement on
// PostgreSQL, four on SQLite). The rules are expireMember's; the saving is one commit and a few statements for
// thousands of members instead of several statements and a commit each. Each
// member still gets its loyalty.expire_member_points span, spanning the
// transaction that expired it.
func (s *Service) expireChunk(ctx context.Context, ids []string, now time.Time) (*chunkExpiry, error) {
	c := &chunkExpiry{ids: ids, index: make(map[string]int, len(ids)), members: make([]expiryCandidate, len(ids))}
	for i, id := range ids {
		c.index[id] = i
	}
	start := time.Now()
	q := newExpirySQL(s.db.Dialect())
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		return s.expireChunkTx(ctx, tx, q, c, now)
	})
	if err != nil {
		return nil, err
	}
	s.memberSpans(ctx, c, start, time.Now())
	if c.total > 0 && s.expired != nil {
		s.expired.Add(ctx, c.total, metric.WithAttributes(attribute.String("loyalty.expiry_policy", s.prog.Expiry.Policy)))
	}
	return c, nil
}

// memberSpans records a loyalty.expire_member_points span per candidate of
// c, all spanning [start, end]. Thousands are made a second, so the options
// shared by all are built once and the attributes of all in one slice.
func (s *Service) memberSpans(ctx context.Context, c *chunkExpiry, start, end time.Time) {
	startAt, endAt := trace.WithTimestamp(start), trace.WithTimestamp(end)
	size := attribute.Int("loyalty.expiry_chunk_size", len(c.ids))
	attrs := make([]attribute.KeyValue, 3*len(c.ids))
	for i, id := range c.ids {
		a := attrs[3*i : 3*i+3 : 3*i+3]
		a[0] = attribute.String("loyalty.member_id", id)
		a[1] = attribute.Int64("loyalty.points_expiring", c.members[i].points)
		a[2] = size
		_, span := s.tracer.Start(ctx, "loyalty.expire_member_points", startAt)
		span.SetAttributes(a...)
		span.End(endAt)
	}
}

// expireChunkTx runs in the chunk's transaction; it may run more than once,
// so it starts by forgetting what an earlier attempt decided.
func (s *Service) expireChunkTx(ctx context.Context, tx *db.Tx, q expirySQL, c *chunkExpiry, now time.Time) error {
	if err := s.decideChunk(ctx, tx, q.lockMembers, q, c, now); err != nil || len(c.uses) == 0 {
		return err
	}
	return s.writeExpiries(ctx, tx, q, c, now)
}

// querier is a transaction or a pool to read through.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// decideChunk decides what the chunk's members lose, on c (members, uses,
// affected, total), reading them with membersQuery (lockMembers in the
// chunk's transaction; readMembers for a dry run) and then their lots.
func (s *Service) decideChunk(ctx context.Context, qr querier, membersQuery string, q expirySQL, c *chunkExpiry, now time.Time) error {
	clear(c.members)
	c.uses, c.affected, c.total = c.uses[:0], 0, 0
	ids := jsonRows(nil, len(c.ids), func(b []byte, i int) []byte { return appendJSONString(b, c.ids[i]) })
	due, err := s.dueMembers(ctx, qr, membersQuery, c, ids, now)
	if err != nil || len(due) == 0 {
		return err
	}
	// Lots in the order expiry consumes them, soonest-expiring first.
	dueIDs := jsonRows(ids[:0], len(due), func(b []byte, k int) []byte { return appendJSONString(b, c.ids[due[k]]) })
	var rows *sql.Rows
	if s.prog.Expiry.Policy == program.ExpiryLot {
		rows, err = qr.QueryContext(ctx, q.lotsDue, string(dueIDs), db.Micros(now))
	} else {
		rows, err = qr.QueryContext(ctx, q.lots, string(dueIDs))
	}
	if err != nil {
		return fmt.Errorf("read lots: %w", err)
	}
	if err := c.takeLots(rows); err != nil {
		return fmt.Errorf("read lots: %w", err)
	}
	return nil
}

// previewChunk decides what the members ids would lose, as expireChunk
// would, reading without locks and writing nothing: a dry run.
func (s *Service) previewChunk(ctx context.Context, ids []string, now time.Time) (*chunkExpiry, error) {
	c := &chunkExpiry{ids: ids, index: make(map[string]int, len(ids)), members: make([]expiryCandidate, len(ids))}
	for i, id := range ids {
		c.index[id] = i
	}
	q := newExpirySQL(s.db.Dialect())
	if err := s.decideChunk(ctx, s.db.Read(), q.readMembers, q, c, now); err != nil {
		return nil, err
	}
	return c, nil
}

// dueMembers reads the chunk's members (ids, as JSON rows) with query,
// which locks them in the chunk's transaction, and returns the indexes of
// those who can lose points at all: a spendable balance, and under the
// inactivity policy an inactivity deadline that has passed.
func (s *Service) dueMembers(ctx context.Context, qr querier, query string, c *chunkExpiry, ids []byte, now time.Time) ([]int, error) {
	rows, err := qr.QueryContext(ctx, query, string(ids))
	if err != nil {
		return nil, fmt.Errorf("lock members: %w", err)
	}
	var (
		due           []int
		id            sql.RawBytes // only looked up, so no copy per row
		balance, held int64
		last          sql.NullInt64
		created       int64
	)
	for rows.Next() {
		if err := rows.Scan(&id, &balance, &held, &last, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lock members: %w", err)
		}
		i, ok := c.index[string(id)]
		if !ok {
			continue
		}
		c.members[i].total = balance + held
		if balance <= 0 {
			continue
		}
		if s.prog.Expiry.Policy != program.ExpiryLot {
			lastAt := created
			if last.Valid {
				lastAt = last.Int64
			}
			if !program.IsExpired(s.prog.InactivityExpiry(db.FromMicros(lastAt)), now) {
				continue
			}
		}
		c.members[i].avail = balance
		due = append(due, i)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("lock members: %w", err)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("lock members: %w", err)
	}
	return due, nil
}

// takeLots reads a chunk's lots (member id, lot id, remaining) in the order
// expiry consumes them and takes from each what its member can lose.
func (c *chunkExpiry) takeLots(rows *sql.Rows) error {
	var memberID sql.RawBytes // only looked up, so no copy per row
	for rows.Next() {
		var (
			lotID     string
			remaining int64
		)
		if err := rows.Scan(&memberID, &lotID, &remaining); err != nil {
			rows.Close()
			return err
		}
		i, ok := c.index[string(memberID)]
		if !ok {
			continue
		}
		m := &c.members[i]
		left := m.avail - m.points
		if left <= 0 || remaining <= 0 {
			continue
		}
		take := min(remaining, left)
		if m.points == 0 {
			c.affected++
		}
		m.points += take
		c.total += take
		c.uses = append(c.uses, expiryLotUse{member: i, lot: lotID, points: take})
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}

// writeExpiries writes a chunk's lot updates, its ledger transactions with
// their two postings each, and the members' balances (expirySQL.writes).
func (s *Service) writeExpiries(ctx context.Context, tx *db.Tx, q expirySQL, c *chunkExpiry, now time.Time) error {
	lots := jsonRows(nil, len(c.uses), func(b []byte, k int) []byte {
		b = appendJSONString(b, c.uses[k].lot)
		b = append(b, ',')
		return strconv.AppendInt(b, c.uses[k].points, 10)
	})
	txs, moves, expired := s.expiryRows(c)
	var args [nExpiryArgs]any
	args[argTxs], args[argMoves], args[argLots] = string(txs), string(moves), string(lots)
	args[argType], args[argActor], args[argTraceID] = TxExpire, actorOf(ctx), traceIDOf(ctx)
	args[argAt], args[argSink] = db.Micros(now), AccountExpiry
	for _, w := range q.writes {
		a := make([]any, len(w.args))
		for k, n := range w.args {
			a[k] = args[n]
		}
		if _, err := tx.ExecContext(ctx, w.query, a...); err != nil {
			return fmt.Errorf("write expiries: %s: %w", w.name, err)
		}
	}
	if s.events == nil {
		return nil
	}
	evs := make([]events.Event, 0, len(expired))
	for _, x := range expired {
		e, err := s.event(ctx, events.PointsExpired, x.MemberID, now, x)
		if err != nil {
			return err
		}
		evs = append(evs, e...)
	}
	return s.emit(ctx, tx, evs...)
}

// expiryRows returns a chunk's transaction rows and debit rows as JSON, one
// of each per member, from the member's run of lot uses.
func (s *Service) expiryRows(c *chunkExpiry) (txs, moves []byte, expired []events.PointsExpiredData) {
	policy := s.prog.Expiry.Policy
	var bd []byte
	for k := 0; k < len(c.uses); {
		i := c.uses[k].member
		m := &c.members[i]
		bd = append(bd[:0], `{"lots":[`...)
		for first := true; k < len(c.uses) && c.uses[k].member == i; k++ {
			if !first {
				bd = append(bd, ',')
			}
			first = false
			bd = append(bd, `{"lot_id":`...)
			bd = appendBreakdownString(bd, c.uses[k].lot)
			bd = append(bd, `,"points":`...)
			bd = strconv.AppendInt(bd, c.uses[k].points, 10)
			bd = append(bd, '}')
		}
		bd = append(bd, `],"policy":`...)
		bd = appendBreakdownString(bd, policy)
		bd = append(bd, '}')

		sep := `],[`
		if len(txs) == 0 {
			sep = `[[`
		}
		id := newID()
		// avail is the spendable balance here: a member expires only with a positive one.
		expired = append(expired, events.PointsExpiredData{MemberID: c.ids[i], TransactionID: id, Points: m.points, Balance: m.avail - m.points})
		txs = append(txs, sep...)
		txs = appendJSONString(txs, id)
		txs = append(txs, ',')
		txs = appendJSONString(txs, c.ids[i])
		txs = append(txs, ',')
		txs = appendJSONString(txs, bd)

		moves = append(moves, sep...)
		moves = appendJSONString(moves, id)
		moves = append(moves, ',')
		moves = appendJSONString(moves, c.ids[i])
		moves = append(moves, ',')
		moves = appendJSONString(moves, MemberAccount(c.ids[i]))
		moves = append(moves, ',')
		moves = strconv.AppendInt(moves, m.points, 10)
		moves = append(moves, ',')
		moves = strconv.AppendInt(moves, m.total-m.points, 10)
	}
	txs = append(txs, `]]`...)
	moves = append(moves, `]]`...)

	return txs, moves, expired
}

// jsonRows appends to b a JSON array of n arrays, the k-th holding what
// elem appends.
func jsonRows(b []byte, n int, elem func(b []byte, k int) []byte) []byte {
	b = append(b, '[')
	for k := range n {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = elem(b, k)
		b = append(b, ']')
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires (the rows' text is only ever read back by the database).
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendBreakdownString appends s as json.Marshal writes it in a breakdown:
// lot ids and policies are plain ASCII and copied as they are; anything else
// goes through encoding/json itself (which also escapes <, > and &).
func appendBreakdownString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
