package loyalty_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestBalanceAndStatementAsOf books an earning, an adjustment, a redemption
// and, last, an adjustment backdated to between the first two, each at its
// own instant of the injected clock, then reads the balance and the
// statement as of instants across them: by effective time, with the
// backdated adjustment where it takes effect and both its times shown.
func TestBalanceAndStatementAsOf(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		at := func(d time.Duration) time.Time { return startTime.Add(d) }
		e.member(t, "m")
		e.member(t, "other")
		e.clock.Set(at(time.Hour))
		earn := e.earn(t, "m", hotel("h1", 20_000)) // 2,000
		e.earn(t, "other", hotel("o1", 90_000))     // not m's
		e.clock.Set(at(2 * time.Hour))
		e.fund(t, "m", 500)
		e.clock.Set(at(3 * time.Hour))
		if _, err := e.svc.Redeem(ctx, "m", "merch-luggage-tag", ""); err != nil { // 1,500
			t.Fatal(err)
		}
		e.clock.Set(at(4 * time.Hour))
		r := e.do(t, "POST", "/v1/admin/members/m/adjustments", e.admin(t),
			map[string]any{"points": 300, "reason": "missed stay", "effective_at": at(90 * time.Minute).Format(time.RFC3339)})
		var adj loyalty.AdjustmentResult
		r.json(t, &adj)
		if r.status != 201 || !adj.EffectiveAt.Equal(at(90*time.Minute)) || !adj.CreatedAt.Equal(at(4*time.Hour)) || adj.NewBalance != 1300 {
			t.Fatalf("backdated adjustment: %d %s", r.status, r.raw)
		}

		tok := e.memberTok(t, "m")
		balance := func(asOf time.Time) int64 {
			t.Helper()
			r := e.do(t, "GET", "/v1/members/m/balance?as_of="+url.QueryEscape(asOf.Format(time.RFC3339Nano)), tok, nil)
			var b loyalty.BalanceAsOf
			r.json(t, &b)
			if r.status != 200 || b.MemberID != "m" || !b.AsOf.Equal(asOf) {
				t.Fatalf("balance as of %s: %d %s", asOf, r.status, r.raw)
			}
			return b.Points
		}
		for _, c := range []struct {
			at   time.Duration
			want int64
		}{
			{-time.Hour, 0}, // before the member joined
			{30 * time.Minute, 0},
			{time.Hour - time.Microsecond, 0},
			{time.Hour, 2000}, // as of an instant includes what took effect at it
			{89 * time.Minute, 2000},
			{90 * time.Minute, 2300}, // the backdated adjustment, booked at 4h
			{2 * time.Hour, 2800},
			{3 * time.Hour, 1300},
			{4 * time.Hour, 1300},
		} {
			if got := balance(at(c.at)); got != c.want {
				t.Errorf("balance as of +%s = %d, want %d", c.at, got, c.want)
			}
		}
		// Without as_of: now, which is the member's balance.
		r = e.do(t, "GET", "/v1/members/m/balance", tok, nil)
		var now loyalty.BalanceAsOf
		r.json(t, &now)
		if m := e.get(t, "m"); r.status != 200 || now.Points != m.Balance+m.Pending || now.Points != 1300 {
			t.Errorf("balance now: %d %s; member %d+%d", r.status, r.raw, m.Balance, m.Pending)
		}

		// The statement as of 2h30: newest effective first, balances along
		// effective time, each entry with both times.
		asOf := at(150 * time.Minute)
		type row struct {
			Type               string
			Points, After      int64
			Created, Effective time.Duration
		}
		rowsOf := func(st loyalty.Statement) []row {
			var out []row
			for _, en := range st.Entries {
				out = append(out, row{en.Type, en.Points, en.BalanceAfter, en.CreatedAt.Sub(startTime), en.EffectiveAt.Sub(startTime)})
			}
			return out
		}
		want := []row{
			{loyalty.TxAdjustment, 500, 2800, 2 * time.Hour, 2 * time.Hour},
			{loyalty.TxAdjustment, 300, 2300, 4 * time.Hour, 90 * time.Minute},
			{loyalty.TxEarn, 2000, 2000, time.Hour, time.Hour},
		}
		r = e.do(t, "GET", "/v1/members/m/statement?as_of="+asOf.Format(time.RFC3339), tok, nil)
		var st loyalty.Statement
		r.json(t, &st)
		if got := rowsOf(st); r.status != 200 || !slices.Equal(got, want) || st.NextCursor != "" {
			t.Errorf("statement as of +2h30: %d\n got %+v\nwant %+v", r.status, got, want)
		}
		if st.Entries[2].TransactionID != earn.TransactionID || st.Entries[1].TransactionID != adj.TransactionID {
			t.Errorf("statement as of +2h30: transactions %s, %s", st.Entries[2].TransactionID, st.Entries[1].TransactionID)
		}
		// One entry a page gives the same entries.
		var paged []row
		cursor := ""
		for i := 0; i < 5; i++ {
			st, err := e.svc.StatementAt(ctx, "m", asOf, 1, cursor)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, rowsOf(st)...)
			if cursor = st.NextCursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(paged, want) {
			t.Errorf("paged statement as of +2h30:\n got %+v\nwant %+v", paged, want)
		}
		// The statement now lists in booking order, and shows both times too.
		st, err := e.svc.Statement(ctx, "m", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Entries) != 4 || st.Entries[0].TransactionID != adj.TransactionID ||
			!st.Entries[0].EffectiveAt.Equal(at(90*time.Minute)) || !st.Entries[0].CreatedAt.Equal(at(4*time.Hour)) ||
			!st.Entries[1].EffectiveAt.Equal(st.Entries[1].CreatedAt) {
			t.Errorf("statement: %+v", st.Entries)
		}

		// Bad requests change nothing.
		before := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`)
		for _, c := range []struct {
			name, method, path string
			body               any
			status             int
			code               string
		}{
			{"future balance", "GET", "/v1/members/m/balance?as_of=" + at(5*time.Hour).Format(time.RFC3339), nil, 400, "invalid_as_of"},
			{"malformed balance", "GET", "/v1/members/m/balance?as_of=yesterday", nil, 400, "invalid_as_of"},
			{"date only", "GET", "/v1/members/m/balance?as_of=2026-03-10", nil, 400, "invalid_as_of"},
			{"future statement", "GET", "/v1/members/m/statement?as_of=" + at(5*time.Hour).Format(time.RFC3339), nil, 400, "invalid_as_of"},
			{"foreign cursor", "GET", "/v1/members/m/statement?as_of=" + asOf.Format(time.RFC3339) + "&cursor=" + st.NextCursor + "cDE6MQ", nil, 400, "invalid_cursor"},
			{"unknown member", "GET", "/v1/members/nobody/balance", nil, 404, "member_not_found"},
			{"before joining", "POST", "/v1/admin/members/m/adjustments", map[string]any{"points": 1, "reason": "x", "effective_at": at(-time.Minute).Format(time.RFC3339)}, 422, "invalid_effective_at"},
			{"in the future", "POST", "/v1/admin/members/m/adjustments", map[string]any{"points": 1, "reason": "x", "effective_at": at(5 * time.Hour).Format(time.RFC3339)}, 422, "invalid_effective_at"},
			{"not a time", "POST", "/v1/admin/members/m/adjustments", map[string]any{"points": 1, "reason": "x", "effective_at": "last tuesday"}, 400, ""},
		} {
			r := e.do(t, c.method, c.path, e.admin(t), c.body)
			if r.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
				continue
			}
			if p := r.problem(t); c.code != "" && p["code"] != c.code {
				t.Errorf("%s: code %v, want %s", c.name, p["code"], c.code)
			}
		}
		if after := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`); after != before {
			t.Errorf("bad requests booked %d transactions", after-before)
		}
		// Another member cannot read m's balance.
		if r := e.do(t, "GET", "/v1/members/m/balance", e.memberTok(t, "other"), nil); r.status != 403 {
			t.Errorf("other member's balance: %d", r.status)
		}
		e.verify(t)
	})
}

// TestAsOfReadsUseIndexes requires SQLite's plan for an as-of balance to
// reach the member's postings through loyalty_postings_account and their
// transactions by primary key: no scan of either table. (PostgreSQL's
// planner prefers a sequential scan of a test's few rows, so its plan says
// nothing about a real ledger; the indexes are the same.)
func TestAsOfReadsUseIndexes(t *testing.T) {
	d := dbtest.New(t, db.SQLite)
	rows, err := d.Read().Query(`EXPLAIN QUERY PLAN `+loyalty.BalanceAtQuery, "member:m", int64(1))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "USING INDEX loyalty_postings_account (account=?)") ||
		!strings.Contains(text, "USING INDEX sqlite_autoindex_loyalty_transactions_1 (id=?)") || strings.Contains(text, "SCAN") {
		t.Errorf("as-of balance plan:\n%s", text)
	}
}
