package loyalty_test

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/events/eventstest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestEnginesWriteSameRows runs one deterministic script of every write
// path — earnings of each activity type with promotions and their caps, a
// tier upgrade, holds placed, captured, voided and reaped, a refund,
// redemptions that succeed and whose fulfilment fails, partner transfers
// that complete and that the partner rejects, a member transfer, a partner
// credit, reversals, adjustments, expiry and requalification — on a fresh
// SQLite and a fresh PostgreSQL database, with the same clock, and requires
// the rows they leave to be equal. The engines take different statements
// for the same write (internal/ledger: writes_postgres.go, writes_sqlite.go); this is what
// says they write the same thing. Random ids are replaced by labels in the
// names made of their rows' other columns (see comparedTables), trace ids
// by a placeholder.
func TestEnginesWriteSameRows(t *testing.T) {
	var (
		mu    sync.Mutex
		dumps = map[db.Engine]engineRun{}
	)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		run := runEngineScript(t, d)
		checkScriptEvents(t, d)
		for _, table := range comparedTables {
			if len(run.tables[table.name]) == 0 {
				t.Errorf("script left no rows in %s: it no longer exercises that write path", table.name)
			}
		}
		// The script still takes the paths it is meant to.
		for _, want := range []string{
			`hotel upgrade: total 27500 (base 26000 tier 0 promo 1500) balance 27500 tier silver new tier "silver"`,
			"capture voided: error hold_voided",
			"redeem fulfilment fails: error fulfillment_failed",
			"partner rejects: error partner_rejected",
			"reverse upgrade: points 27500 status 26000 balance -1450 tier blue",
			"void expired holds: 1",
			"reverse pending purchase: balance 0",
			"vest: candidates 1 affected 1 earnings 1 points 456",
			"vest again: candidates 0 affected 0 earnings 0 points 0",
			"expire: candidates 4 affected 4",
		} {
			if !slices.ContainsFunc(run.outcomes, func(o string) bool { return strings.HasPrefix(o, want) }) {
				t.Errorf("no step's result begins %q; results:\n%s", want, strings.Join(run.outcomes, "\n"))
			}
		}
		mu.Lock()
		dumps[d.Engine()] = run
		mu.Unlock()
	})
	lite, pg := dumps[db.SQLite], dumps[db.Postgres]
	if pg.tables == nil {
		t.Skipf("comparison skipped: PostgreSQL is not configured (set %s); the script ran on SQLite only", dbtest.EnvPostgres)
	}
	if lite.tables == nil {
		t.Fatal("the SQLite run did not finish")
	}
	if diff := cmp.Diff(lite.outcomes, pg.outcomes); diff != "" {
		t.Errorf("the script's results differ between engines (-sqlite +postgres):\n%s", diff)
	}
	for _, table := range comparedTables {
		if diff := cmp.Diff(lite.tables[table.name], pg.tables[table.name]); diff != "" {
			t.Errorf("%s differs between engines (-sqlite +postgres):\n%s", table.name, diff)
		}
	}
}

// engineRun is what the script left on one engine, normalised.
type engineRun struct {
	outcomes []string            // one line per call: its result or error code
	tables   map[string][]string // table → rows, each its columns joined by " | "
}

// comparedTables are the tables the write paths touch, with every column
// but generated row numbers (postings' identity, which PostgreSQL's
// sequences may skip on a retried transaction). A table whose first column
// is a generated id says how to name it from the rest of its row (name):
// the name replaces the id everywhere, so a difference in one row shows as
// that row's difference, not as every later id renumbered.
var comparedTables = []struct {
	name, columns string
	label         func(c []string) string
}{
	{"loyalty_members", "id, name, email, tier, balance, held, status_points, status_year, last_activity_at, created_at, updated_at, prev_status_points, prev_status_year, requalified_year", nil},
	// type, member, created_at
	{"loyalty_transactions", "id, type, member_id, idempotency_key, breakdown, actor, trace_id, created_at",
		func(c []string) string { return "tx:" + c[1] + ":" + c[2] + "@" + c[7] }},
	{"loyalty_postings", "transaction_id, account, amount, balance_after, created_at", nil},
	// member, earned_at
	{"loyalty_lots", "id, member_id, transaction_id, points, remaining, earned_at, expires_at",
		func(c []string) string { return "lot:" + c[1] + "@" + c[5] }},
	{"loyalty_activities", "source, external_id, member_id, type, occurred_at, request_hash, transaction_id, result, created_at", nil},
	{"loyalty_promotions", "id, name, start_at, end_at, activity_types, tiers, multiplier_bp, fixed_bonus, cap_points, cap_times, created_at, updated_at, deleted_at", nil},
	{"loyalty_promotion_awards", "promotion_id, member_id, points, times", nil},
	// member, created_at
	{"loyalty_holds", "id, member_id, points, reference, status, transaction_id, created_at, expires_at, updated_at",
		func(c []string) string { return "hold:" + c[1] + "@" + c[6] }},
	{"loyalty_redemptions", "id, member_id, option_id, option_type, list_points, discount, cost, hold_id, reference, status, confirmation, failure, new_balance, transaction_id, trace_id, created_at, updated_at",
		func(c []string) string { return "redemption:" + c[1] + "@" + c[15] }},
	{"loyalty_transfers", "id, kind, member_id, partner_id, to_member_id, points, partner_units, hold_id, reference, status, confirmation, new_balance, transaction_id, trace_id, created_at, updated_at",
		func(c []string) string { return "transfer:" + c[2] + "@" + c[14] }},
	// member, created_at
	{"loyalty_pending", "id, member_id, transaction_id, activity_type, points, status_points, vests_at, status, settled_transaction_id, created_at, settled_at",
		func(c []string) string { return "pending:" + c[1] + "@" + c[9] }},
	// The event id is random, as is the traceparent's span id.
	{"events", "type, source, subject, time, data, CASE WHEN traceparent <> '' THEN 'traced' ELSE 'untraced' END", nil},
}

// scriptedProviders are the fulfiller and partner gateway of the script:
// deterministic confirmations, and a failure when told.
type scriptedProviders struct {
	mu   sync.Mutex
	fail bool
	n    int
}

func (p *scriptedProviders) setFail(fail bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = fail
}

func (p *scriptedProviders) confirm(prefix string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return "", loyalty.ErrRejected
	}
	p.n++
	return fmt.Sprintf("%s%04d", prefix, p.n), nil
}

func (p *scriptedProviders) Fulfill(_ context.Context, r loyalty.FulfillmentRequest) (string, error) {
	return p.confirm("RD-")
}

type scriptedPartners struct{ *scriptedProviders }

func (p scriptedPartners) Transfer(_ context.Context, r loyalty.PartnerTransferRequest) (string, error) {
	return p.confirm("TR-")
}

// runEngineScript runs the script on d and returns what it left.
func runEngineScript(t *testing.T, d *db.DB) engineRun {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: startTime}
	providers := &scriptedProviders{}
	// A real tracer provider, so trace ids are written (and normalised).
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prog := lotProgram(1) // lots expire at the end of the quarter after next: expiry happens within the script
	svc, err := loyalty.New(loyalty.Config{
		DB: d, Program: prog, Now: clk.Now, TracerProvider: tp,
		HoldTTL: 30 * time.Minute, Fulfiller: providers, Partners: scriptedPartners{providers}, Events: events.Recorder{},
	})
	if err != nil {
		t.Fatal(err)
	}

	var outcomes []string
	// step advances the clock a minute, so every step's rows have their own
	// timestamps, and records the step's result.
	step := func(name string, f func() (string, error)) string {
		t.Helper()
		clk.Set(clk.Now().Add(time.Minute))
		got, err := f()
		line := name + ": " + got
		if err != nil {
			code := errs.CodeOf(err)
			if code == "" || code == string(errs.Internal) {
				t.Fatalf("%s: unexpected error %v", name, err)
			}
			line = name + ": error " + code
		}
		outcomes = append(outcomes, line)
		return got
	}
	earn := func(name, member string, a loyalty.Activity) string {
		return step(name, func() (string, error) {
			r, err := svc.Earn(ctx, member, a)
			return fmt.Sprintf("total %d (base %d tier %d promo %d) balance %d tier %s new tier %q replayed %v tx %s",
				r.TotalPointsEarned, r.BasePoints, r.TierBonus, r.PromoBonus, r.NewBalance, r.Tier, r.NewTier, r.Replayed, r.TransactionID), err
		})
	}
	txOf := func(line string) string {
		_, id, _ := strings.Cut(line, " tx ")
		return id
	}
	redeem := func(name, member, option, ref string) {
		step(name, func() (string, error) {
			r, err := svc.Redeem(ctx, member, option, ref)
			return fmt.Sprintf("%s cost %d balance %d confirmation %s", r.Status, r.PointsDeducted, r.NewBalance, r.Confirmation), err
		})
	}
	transfer := func(name, member string, req loyalty.TransferRequest) {
		step(name, func() (string, error) {
			r, err := svc.Transfer(ctx, member, req)
			return fmt.Sprintf("%s points %d units %d balance %d confirmation %s", r.Status, r.Points, r.PartnerUnits, r.NewBalance, r.Confirmation), err
		})
	}
	hold := func(name, member string, points int64, ref string) string {
		return step(name, func() (string, error) { return svc.HoldPoints(ctx, member, points, ref) })
	}

	for _, id := range []string{"ana", "ben", "cho", "dee"} {
		step("create "+id, func() (string, error) {
			m, err := svc.CreateMember(ctx, loyalty.NewMember{ID: id, Name: "Member " + id, Email: id + "@example.com"})
			return m.Tier, err
		})
	}
	for _, p := range []program.Promotion{
		{ID: "fly3", Name: "First three flights", ActivityTypes: []string{program.ActivityFlight}, FixedBonus: 100, CapTimes: 3},
		{ID: "hotel2x", Name: "Double hotels to 1,500", ActivityTypes: []string{program.ActivityHotel}, MultiplierBP: 20000, CapPoints: 1500},
		{ID: "silver-cards", Name: "Silver card spend", ActivityTypes: []string{program.ActivityCardSpend}, Tiers: []string{"silver"}, FixedBonus: 50},
	} {
		p.Start, p.End = startTime.AddDate(0, -1, 0), startTime.AddDate(1, 0, 0)
		step("promotion "+p.ID, func() (string, error) {
			pr, err := svc.CreatePromotion(ctx, p)
			return pr.ID, err
		})
	}

	// Earnings of each type; promotion caps reached; a tier upgrade.
	for i := range 4 {
		earn(fmt.Sprintf("flight %d", i), "ana", flight(fmt.Sprintf("fl-%d", i), 1200, "Y"))
	}
	earn("hotel under cap", "ana", hotel("ht-1", 50_000))
	earn("hotel over cap, upgrade", "ana", hotel("ht-2", 160_000)) // 25,800 status points: silver
	earn("replay", "ana", hotel("ht-2", 160_000))
	earn("conflict", "ana", hotel("ht-2", 1))
	upgrade := earn("hotel upgrade", "ben", hotel("ht-3", 260_000)) // 26,000 status points: silver
	earn("card at silver", "ben", loyalty.Activity{Activity: program.Activity{Type: program.ActivityCardSpend, Amount: usd(120_000), MerchantCategory: "4511"}, ExternalID: "cc-1"})
	earn("card at blue", "cho", loyalty.Activity{Activity: program.Activity{Type: program.ActivityCardSpend, Amount: usd(99_999), MerchantCategory: "5411"}, ExternalID: "cc-2"})
	earn("retro flight", "cho", loyalty.Activity{Activity: program.Activity{Type: program.ActivityFlight,
		Flight: &program.Flight{DistanceMiles: 300, FareClass: "J", Cabin: "business"}}, ExternalID: "fl-retro", OccurredAt: startTime.AddDate(0, -2, 0)})
	step("purchase", func() (string, error) {
		r, err := svc.EarnPurchase(ctx, "dee", "order-1", money.Money{Amount: 45_678, Currency: "USD"})
		return fmt.Sprintf("total %d balance %d", r.TotalPointsEarned, r.NewBalance), err
	})
	step("purchase 2", func() (string, error) {
		r, err := svc.EarnPurchase(ctx, "dee", "order-2", money.Money{Amount: 10_000, Currency: "USD"})
		return fmt.Sprintf("total %d balance %d", r.TotalPointsEarned, r.NewBalance), err
	})
	// Purchases pend for their 30-day return window: one is refunded
	// within it (cancelled, the balance untouched), the other vests.
	step("reverse pending purchase", func() (string, error) {
		err := svc.ReversePurchase(ctx, "dee", "order-2")
		m, _ := svc.GetMember(ctx, "dee")
		return fmt.Sprintf("balance %d", m.Balance), err
	})
	clk.Set(clk.Now().AddDate(0, 0, 30))
	for _, name := range []string{"vest", "vest again"} {
		step(name, func() (string, error) {
			r, err := svc.VestBatch(ctx, loyalty.VestOptions{})
			return fmt.Sprintf("candidates %d affected %d earnings %d points %d", r.Candidates, r.AccountsAffected, r.EarningsVested, r.TotalPointsVested), err
		})
	}

	// Holds: pay-with-points at checkout.
	h1 := hold("hold captured", "ana", 700, "checkout:1")
	step("capture", func() (string, error) { return "", svc.CapturePointsHold(ctx, h1) })
	step("capture again", func() (string, error) { return "", svc.CapturePointsHold(ctx, h1) })
	h2 := hold("hold voided", "ana", 300, "checkout:2")
	step("void", func() (string, error) { return "", svc.VoidPointsHold(ctx, h2) })
	step("capture voided", func() (string, error) { return "", svc.CapturePointsHold(ctx, h2) })
	hold("hold replayed", "ana", 300, "checkout:2")
	hold("hold too big", "cho", 1_000_000, "checkout:3")
	step("refund", func() (string, error) { return "", svc.RefundPoints(ctx, "ana", 200, "refund:1") })
	step("refund replay", func() (string, error) { return "", svc.RefundPoints(ctx, "ana", 200, "refund:1") })
	hold("hold left to the reaper", "dee", 300, "checkout:4")

	// Redemptions: success, fulfilment failure, too few points.
	redeem("redeem", "ben", "merch-luggage-tag", "r-1")
	redeem("redeem replay", "ben", "merch-luggage-tag", "r-1")
	providers.setFail(true)
	redeem("redeem fulfilment fails", "ben", "merch-travel-mug", "r-2")
	providers.setFail(false)
	redeem("redeem too few", "cho", "award-long-haul-business", "")
	redeem("redeem no reference", "ana", "merch-travel-mug", "")

	// Transfers: to a partner (completed, rejected) and to a member.
	transfer("partner transfer", "ben", loyalty.TransferRequest{PartnerID: "meridian-air", Points: 3000, Reference: "t-1"})
	providers.setFail(true)
	transfer("partner rejects", "ben", loyalty.TransferRequest{PartnerID: "northwind-airways", Points: 1000, Reference: "t-2"})
	providers.setFail(false)
	transfer("member transfer", "ana", loyalty.TransferRequest{ToMemberID: "cho", Points: 1234, Reference: "t-3"})
	transfer("member transfer replay", "ana", loyalty.TransferRequest{ToMemberID: "cho", Points: 1234, Reference: "t-3"})
	transfer("below minimum", "ana", loyalty.TransferRequest{ToMemberID: "cho", Points: 10})
	step("partner credit", func() (string, error) {
		r, err := svc.PartnerCredit(ctx, "cho", "harbor-hotels", "hh-1", 2500)
		return fmt.Sprintf("balance %d", r.NewBalance), err
	})

	// Reversals and adjustments, one taking a balance below zero.
	step("reverse upgrade", func() (string, error) {
		r, err := svc.ReverseTransaction(ctx, txOf(upgrade), "stay cancelled")
		return fmt.Sprintf("points %d status %d balance %d tier %s", r.PointsReversed, r.StatusPointsReversed, r.NewBalance, r.Tier), err
	})
	step("reverse purchase", func() (string, error) { return "", svc.ReversePurchase(ctx, "dee", "order-2") })
	step("adjust up", func() (string, error) {
		r, err := svc.Adjust(ctx, "cho", 5000, "goodwill")
		return fmt.Sprintf("balance %d", r.NewBalance), err
	})
	step("adjust down", func() (string, error) {
		r, err := svc.Adjust(ctx, "cho", -1500, "correction")
		return fmt.Sprintf("balance %d", r.NewBalance), err
	})
	earn("earn repays debt", "ben", hotel("ht-4", 20_000))

	// The reaper, expiry and the year-end requalification.
	step("void expired holds", func() (string, error) {
		n, err := svc.VoidExpiredHolds(ctx, clk.Now().Add(time.Hour))
		return fmt.Sprint(n), err
	})
	clk.Set(date(2026, 7, 1))
	step("expire", func() (string, error) {
		r, err := svc.ExpireBatch(ctx, loyalty.ExpireOptions{})
		return fmt.Sprintf("candidates %d affected %d points %d", r.Candidates, r.AccountsAffected, r.TotalPointsExpired), err
	})
	clk.Set(date(2026, 11, 2))
	earn("earn after expiry", "cho", hotel("ht-5", 30_000))
	clk.Set(date(2027, 1, 2))
	earn("earn in a new year", "ana", flight("fl-9", 500, "Y"))
	step("requalify", func() (string, error) {
		r, err := svc.Requalify(ctx, clk.Now())
		return fmt.Sprintf("%+v", r), err
	})

	problems, err := svc.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("verify: %s", p)
	}
	return normalise(t, d, outcomes)
}

var (
	uuidPattern    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	traceIDPattern = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
)

// normalise reads the compared tables and replaces what differs between
// runs by chance: trace ids become "<trace>" and generated ids their names
// (see comparedTables); an id no table names becomes "unnamed-id".
func normalise(t *testing.T, d *db.DB, outcomes []string) engineRun {
	t.Helper()
	raw := map[string][][]string{}
	names := map[string]string{}
	named := map[string]string{} // name → id, to catch two ids with one name
	for _, table := range comparedTables {
		rows := readRows(t, d, table.name, table.columns)
		raw[table.name] = rows
		if table.label == nil {
			continue
		}
		for _, r := range rows {
			name := table.label(r)
			if other, ok := named[name]; ok && other != r[0] {
				t.Fatalf("%s: ids %s and %s would both be named %s; name them by more of their row", table.name, other, r[0], name)
			}
			names[r[0]], named[name] = name, r[0]
		}
	}
	replace := func(s string) string {
		s = traceIDPattern.ReplaceAllString(s, "<trace>")
		return uuidPattern.ReplaceAllStringFunc(s, func(id string) string {
			if n, ok := names[id]; ok {
				return n
			}
			return "unnamed-id"
		})
	}
	run := engineRun{tables: map[string][]string{}}
	for _, table := range comparedTables {
		var rows []string
		for _, r := range raw[table.name] {
			rows = append(rows, replace(strings.Join(r, " | ")))
		}
		slices.Sort(rows)
		run.tables[table.name] = rows
	}
	for _, o := range outcomes {
		run.outcomes = append(run.outcomes, replace(o))
	}
	return run
}

// readRows returns every row of table, each column as text ("NULL" for null).
func readRows(t *testing.T, d *db.DB, table, columns string) [][]string {
	t.Helper()
	rows, err := d.Read().QueryContext(context.Background(), `SELECT `+columns+` FROM `+table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	n := len(strings.Split(columns, ","))
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols := make([]string, n)
		for i, v := range vals {
			cols[i] = "NULL"
			if v.Valid {
				cols[i] = v.String
			}
		}
		out = append(out, cols)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return out
}

// checkScriptEvents checks the events the script's flows wrote: each
// matches its type's JSON Schema, carries the trace context of the call that
// made it, and every loyalty event type the script's flows cause is there.
func checkScriptEvents(t *testing.T, d *db.DB) {
	t.Helper()
	evs := eventstest.All(t, d)
	for _, typ := range []string{events.MemberCreated, events.PointsEarned, events.PointsRedeemed, events.PointsTransferred,
		events.PointsReversed, events.PointsExpired, events.TierChanged} {
		if len(eventstest.OfType(evs, typ)) == 0 {
			t.Errorf("the script wrote no %s event", typ)
		}
	}
	dirs := map[string]bool{}
	for _, e := range eventstest.OfType(evs, events.TierChanged) {
		tc := eventstest.Data[events.TierChangedData](t, e)
		dirs[tc.Direction+"/"+tc.Reason] = true
	}
	for _, want := range []string{"up/qualified", "down/reversal"} {
		if !dirs[want] {
			t.Errorf("no tier.changed %s among %v", want, dirs)
		}
	}
	for _, e := range evs {
		// The script enrols its members with no span of the caller's (an
		// HTTP request would have one); every other call starts its own.
		if e.TraceParent == "" && e.Type != events.MemberCreated {
			t.Errorf("event %s (%s) carries no trace context", e.ID, e.Type)
		}
	}
	// Every earning, transfer and redemption transaction has its event. An
	// earning that pended has its points.earned when it vests, and none if
	// a reversal cancelled it while pending (nor a points.reversed then).
	for typ, txType := range map[string]string{events.PointsEarned: "earn", events.PointsTransferred: "transfer", events.PointsRedeemed: "redeem", events.PointsExpired: "expire", events.PointsReversed: "reversal"} {
		var txs int
		if err := d.Read().QueryRow(`SELECT COUNT(*) FROM loyalty_transactions t WHERE t.type = $1
			AND NOT EXISTS (SELECT 1 FROM loyalty_pending p WHERE p.transaction_id = t.id AND p.status <> 'vested')
			AND NOT EXISTS (SELECT 1 FROM loyalty_pending p WHERE p.settled_transaction_id = t.id AND p.status = 'cancelled')`, txType).Scan(&txs); err != nil {
			t.Fatal(err)
		}
		if got := len(eventstest.OfType(evs, typ)); got != txs {
			t.Errorf("%d %s events for %d %s transactions", got, typ, txs, txType)
		}
	}
}
