package loyalty_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// lineKey names a report line: its category, and its detail when it has one.
func lineKey(l loyalty.LiabilityLine) string {
	if l.Detail == "" {
		return l.Category
	}
	return l.Category + "/" + l.Detail
}

// points maps the report's lines by lineKey.
func reportPoints(rep loyalty.LiabilityReport) map[string]int64 {
	out := map[string]int64{}
	for _, l := range rep.Lines {
		out[lineKey(l)] = l.Points
	}
	return out
}

// checkIdentity requires closing = opening + the movements, from the lines,
// in points and in every currency.
func checkIdentity(t *testing.T, rep loyalty.LiabilityReport) {
	t.Helper()
	sign := map[string]int64{"earned": 1, "redeemed": -1, "transferred_out": -1, "expired": -1, "reversed": -1, "adjusted": 1, "other": 1}
	var sum int64
	money := map[string]int64{}
	var closingMoney []int64
	for _, l := range rep.Lines {
		if l.Detail != "" {
			continue
		}
		s, movement := sign[l.Category]
		switch {
		case l.Category == "opening":
			s = 1
		case l.Category == "closing":
			for _, m := range l.Money {
				closingMoney = append(closingMoney, m.Amount)
			}
			continue
		case !movement:
			t.Fatalf("unknown category %q", l.Category)
		}
		sum += s * l.Points
		for _, m := range l.Money {
			money[m.Currency] += s * m.Amount
		}
	}
	if sum != rep.Closing || rep.Lines[len(rep.Lines)-1].Points != rep.Closing || rep.Lines[0].Points != rep.Opening {
		t.Errorf("opening + movements = %d, closing %d; lines %+v", sum, rep.Closing, rep.Lines)
	}
	// Money is rounded per line: with point values of whole minor units
	// per point it adds up exactly.
	for i, v := range rep.PointValues {
		if v.Value == "0.01" && money[v.Currency] != closingMoney[i] {
			t.Errorf("%s: opening + movements = %d, closing %d", v.Currency, money[v.Currency], closingMoney[i])
		}
	}
}

// ledgerSum is what the member accounts hold: by their postings, and by the
// members' cached balances.
func ledgerSum(t *testing.T, e *env) (postings, members int64) {
	t.Helper()
	postings = e.count(t, `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings WHERE account LIKE 'member:%'`)
	members = e.count(t, `SELECT COALESCE(SUM(balance + held), 0) FROM loyalty_members`)
	return postings, members
}

// TestLiabilityReport runs a known scenario — earnings of two activity
// types, a partner credit, a redemption, a partner transfer, a member
// transfer, a reversal, adjustments (one backdated into the first period),
// expiry two years later — and checks every category of two periods, the
// money at the default point values, the breakage rate, that the closing
// figure is the ledger's sum, and the CSV form.
func TestLiabilityReport(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		at := func(d time.Duration) time.Time { return startTime.Add(d) }
		const day = 24 * time.Hour
		e.member(t, "m1")
		e.member(t, "m2")
		e.clock.Set(at(time.Hour))
		e.earn(t, "m1", hotel("h1", 20_000))         // 2,000
		stay := e.earn(t, "m2", hotel("h2", 30_000)) // 3,000
		e.earn(t, "m2", flight("f1", 1_000, "Y"))
		if _, err := e.svc.PartnerCredit(ctx, "m1", "northwind-airways", "nw-1", 1000); err != nil {
			t.Fatal(err)
		}
		e.clock.Set(at(2 * time.Hour))
		if _, err := e.svc.Redeem(ctx, "m1", "merch-luggage-tag", ""); err != nil { // 1,500
			t.Fatal(err)
		}
		if _, err := e.svc.Transfer(ctx, "m2", loyalty.TransferRequest{PartnerID: "northwind-airways", Points: 1000}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Transfer(ctx, "m2", loyalty.TransferRequest{ToMemberID: "m1", Points: 500}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ReverseTransaction(ctx, stay.TransactionID, "stay cancelled"); err != nil { // 3,000
			t.Fatal(err)
		}
		e.fund(t, "m1", -200)
		flightPoints := e.count(t, `SELECT COALESCE(SUM(p.amount), 0) FROM loyalty_postings p JOIN loyalty_transactions t ON t.id = p.transaction_id
			WHERE p.account = 'member:m2' AND t.type = 'earn' AND t.breakdown LIKE '%"f1"%'`)
		if flightPoints <= 0 {
			t.Fatal("setup: the flight earned nothing")
		}

		// Two years on, m1's points expire; m2 owes points and has none.
		e.clock.Set(at(25 * 30 * day))
		if _, err := e.svc.ExpireBatch(ctx, loyalty.ExpireOptions{}); err != nil {
			t.Fatal(err)
		}
		// A correction backdated into the first period.
		e.clock.Set(at(25*30*day + time.Hour))
		if _, err := e.svc.AdjustAt(ctx, "m1", 100, "missed credit", at(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		e.clock.Set(at(27 * 30 * day))

		report := func(from, to time.Time) loyalty.LiabilityReport {
			t.Helper()
			q := url.Values{"from": {from.Format(time.RFC3339)}}
			if !to.IsZero() {
				q.Set("to", to.Format(time.RFC3339))
			}
			r := e.do(t, "GET", "/v1/admin/reports/liability?"+q.Encode(), e.admin(t), nil)
			var rep loyalty.LiabilityReport
			r.json(t, &rep)
			if r.status != 200 {
				t.Fatalf("report: %d %s", r.status, r.raw)
			}
			checkIdentity(t, rep)
			return rep
		}

		first := report(startTime, at(day))
		m1Expired := int64(2000 + 1000 - 1500 + 500 - 200)
		want := map[string]int64{
			"opening":                          0,
			"earned":                           2000 + 3000 + flightPoints + 1000,
			"earned/activity_type:hotel":       5000,
			"earned/activity_type:flight":      flightPoints,
			"earned/partner:northwind-airways": 1000,
			"redeemed":                         1500,
			"transferred_out":                  1000,
			"transferred_out/partner:northwind-airways": 1000,
			"expired":  0,
			"reversed": 3000,
			"adjusted": -200 + 100, // the backdated one counts when it takes effect
			"other":    0,
			"closing":  m1Expired + 100 + flightPoints - 1500,
		}
		got := reportPoints(first)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("first period:\n got %v\nwant %v", got, want)
		}
		if first.BreakageRate == nil || *first.BreakageRate != "0.0000" {
			t.Errorf("first period breakage %v, want 0.0000", first.BreakageRate)
		}
		// Money at USD 0.01 and EUR 0.0092 a point.
		for _, l := range first.Lines {
			if lineKey(l) != "earned" {
				continue
			}
			pts := want["earned"]
			if len(l.Money) != 2 || l.Money[0].Currency != "EUR" || l.Money[0].Amount != (pts*92+50)/100 ||
				l.Money[1].Currency != "USD" || l.Money[1].Amount != pts {
				t.Errorf("earned %d points valued %v", pts, l.Money)
			}
		}

		second := report(at(day), at(26*30*day))
		got = reportPoints(second)
		if got["opening"] != want["closing"] || got["expired"] != m1Expired || got["earned"] != 0 || got["closing"] != want["closing"]-m1Expired {
			t.Errorf("second period: %v (first closed at %d, m1 expired %d)", got, want["closing"], m1Expired)
		}
		if second.BreakageRate == nil || *second.BreakageRate != "1.0000" {
			t.Errorf("second period breakage %v, want 1.0000", second.BreakageRate)
		}

		// To the end of the ledger: the closing figure is the ledger's sum.
		all := report(at(-day), time.Time{})
		if p, m := ledgerSum(t, e); all.Closing != p || all.Closing != m || all.Opening != 0 {
			t.Errorf("closing %d, member postings %d, member balances %d", all.Closing, p, m)
		}

		// CSV: RFC 4180, a header and a record per line, the same figures.
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/admin/reports/liability?from="+startTime.Format(time.RFC3339)+"&to="+at(day).Format(time.RFC3339), nil)
		req.Header.Set("Authorization", "Bearer "+e.admin(t))
		req.Header.Set("Accept", "text/csv")
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("csv: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), raw.String())
		}
		if !strings.Contains(raw.String(), "\r\n") || strings.Count(raw.String(), "\n") != strings.Count(raw.String(), "\r\n") {
			t.Errorf("csv lines do not end in CRLF: %q", raw.String())
		}
		recs, err := csv.NewReader(&raw).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(recs[0], ",") != "category,detail,points,value_EUR,value_USD" || len(recs) != len(first.Lines)+1 {
			t.Fatalf("csv: %q", recs)
		}
		for i, l := range first.Lines {
			rec := recs[i+1]
			if rec[0] != l.Category || rec[1] != l.Detail || rec[2] != fmt.Sprint(l.Points) ||
				rec[4] != strings.TrimSuffix(l.Money[1].String(), " USD") || rec[3] != strings.TrimSuffix(l.Money[0].String(), " EUR") {
				t.Errorf("csv record %q for line %+v", rec, l)
			}
		}
		if recs[2][0] != "earned" || recs[2][4] != fmt.Sprintf("%d.%02d", want["earned"]/100, want["earned"]%100) {
			t.Errorf("csv earned record %q", recs[2])
		}

		// A transaction type the report does not know (a later one, say
		// pending points vesting from another account) is counted under
		// other, by type, and the books still add up.
		e.clock.Set(at(27*30*day + time.Hour))
		if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			return ledger.Post(ctx, tx, ledger.Transaction{ID: ledger.NewID(), Type: "mystery", MemberID: "m1", Breakdown: "{}", Actor: "test",
				At: e.clock.Now(), Postings: []ledger.Posting{ledger.To("pending:m1", -70), ledger.To(loyalty.MemberAccount("m1"), 70)}})
		}); err != nil {
			t.Fatal(err)
		}
		e.clock.Set(at(27*30*day + 2*time.Hour))
		last := report(at(27*30*day), time.Time{})
		if got := reportPoints(last); got["other"] != 70 || got["other/type:mystery"] != 70 || got["closing"] != got["opening"]+70 {
			t.Errorf("unknown type: %v", got)
		}
		if p, _ := ledgerSum(t, e); last.Closing != p {
			t.Errorf("closing %d, member postings %d", last.Closing, p)
		}

		// Bad periods are 400 and name the field.
		for _, c := range []struct{ q, code string }{
			{"", "invalid_from"},
			{"from=last-week", "invalid_from"},
			{"from=2026-03-10T00:00:00Z&to=soon", "invalid_to"},
			{"from=2026-03-10T00:00:00Z&to=2099-01-01T00:00:00Z", "invalid_to"},
			{"from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z", "invalid_from"},
		} {
			r := e.do(t, "GET", "/v1/admin/reports/liability?"+c.q, e.admin(t), nil)
			if r.status != 400 || r.problem(t)["code"] != c.code {
				t.Errorf("%q: %d %s, want 400 %s", c.q, r.status, r.raw, c.code)
			}
		}
		if r := e.do(t, "GET", "/v1/admin/reports/liability?from=2026-03-10T00:00:00Z", e.memberTok(t, "m1"), nil); r.status != 403 {
			t.Errorf("a member read the report: %d", r.status)
		}
	})
}
