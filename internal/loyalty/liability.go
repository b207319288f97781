package loyalty

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// The liability report (issue 21): what the program owes its members — the
// points on member accounts — at the start and end of a period, and every
// movement between, in points and valued in money per currency at the
// program file's point_value.
//
// Opening and closing are sums of the member accounts' postings, read in
// one snapshot with the movements. The movements are read from the other
// side of each transaction: since every transaction's postings sum to zero,
// the change in what members hold is minus what the program's, the sinks'
// and the partners' accounts received. Each such posting is classified by
// its transaction's type and its account; a member-to-member transfer
// touches no other account and so moves no liability. A (type, account)
// pair the report does not know — a transaction type added later — lands
// in "other" under its type, so opening + movements = closing holds for any
// ledger that balances.
//
// Times are effective times, as in asof.go: a backdated adjustment counts
// in the period it takes effect in, so a closed period's report changes when
// one is booked into it (the statement shows when it was booked). The
// period is [from, to): contiguous periods count each movement once.
//
// The report reads every posting up to `to`: it is an occasional admin
// read, and the ledger keeps no per-period snapshots to start from.

// Report categories, in report order. A line's Detail splits its category
// (earned by activity type or by partner, transfers by partner, other by
// transaction type); the line with an empty Detail is the category's total.
const (
	LiabilityOpening        = "opening"
	LiabilityEarned         = "earned"
	LiabilityRedeemed       = "redeemed"
	LiabilityTransferredOut = "transferred_out"
	LiabilityExpired        = "expired"
	LiabilityReversed       = "reversed"
	LiabilityAdjusted       = "adjusted"
	LiabilityOther          = "other"
	LiabilityClosing        = "closing"
)

// liabilityOrder is the order of the categories in a report.
var liabilityOrder = []string{LiabilityOpening, LiabilityEarned, LiabilityRedeemed, LiabilityTransferredOut,
	LiabilityExpired, LiabilityReversed, LiabilityAdjusted, LiabilityOther, LiabilityClosing}

// outflows are the categories reported as positive amounts of points that
// left the members; the others are signed changes of what members hold.
var outflows = map[string]bool{LiabilityRedeemed: true, LiabilityTransferredOut: true, LiabilityExpired: true, LiabilityReversed: true}

// LiabilityLine is one figure of the report: Points, and its value in each
// currency of the program's point_value.
type LiabilityLine struct {
	Category string        `json:"category"`
	Detail   string        `json:"detail,omitempty"`
	Points   int64         `json:"points"`
	Money    []money.Money `json:"money"`
}

// PointValueJSON is a point's value in one currency, as the report shows it.
type PointValueJSON struct {
	Currency string `json:"currency"`
	Value    string `json:"value"`
}

// LiabilityReport is the liability over [From, To). Lines hold opening,
// each category's total and its details, and closing; with the outflows
// (redeemed, transferred_out, expired, reversed) counted positive:
//
//	closing = opening + earned - redeemed - transferred_out - expired - reversed + adjusted + other
//
// BreakageRate is expired / (redeemed + expired) over the period, as a
// decimal with 4 places; absent when nothing was redeemed or expired.
type LiabilityReport struct {
	From         time.Time        `json:"from"`
	To           time.Time        `json:"to"`
	PointValues  []PointValueJSON `json:"point_values"`
	Lines        []LiabilityLine  `json:"lines"`
	Opening      int64            `json:"opening_points"`
	Closing      int64            `json:"closing_points"`
	BreakageRate *string          `json:"breakage_rate"`
}

// category is where a movement posted to a non-member account goes: by the
// transaction's type and the account's kind. ok is false for a pair the
// report does not know.
func liabilityCategory(typ, account, activity string) (category, detail string, ok bool) {
	kind, id, _ := strings.Cut(account, ":")
	switch {
	case typ == TxEarn && account == AccountIssuance:
		return LiabilityEarned, "activity_type:" + activity, true
	case typ == TxEarn && kind == "pending":
		// A pending earning is no liability until it vests: its pending
		// leg takes back what its issuance leg counted.
		return LiabilityEarned, "activity_type:" + activity, true
	case typ == TxVest && kind == "pending":
		return LiabilityEarned, "vested", true
	case typ == TxReversal && kind == "pending":
		// Points cancelled while pending were never the member's.
		return LiabilityReversed, "", true
	case typ == TxPartnerCredit && kind == "partner":
		return LiabilityEarned, "partner:" + id, true
	case (typ == TxRedeem || typ == TxRefund) && account == AccountRedemption:
		return LiabilityRedeemed, "", true
	case typ == TxTransfer && kind == "partner":
		return LiabilityTransferredOut, "partner:" + id, true
	case typ == TxExpire && account == AccountExpiry:
		return LiabilityExpired, "", true
	case typ == TxReversal && account == AccountIssuance:
		return LiabilityReversed, "", true
	case typ == TxAdjustment && account == AccountIssuance:
		return LiabilityAdjusted, "", true
	}
	return LiabilityOther, "type:" + typ, false
}

// ParseReportPeriod reads from (required) and to (optional: the end of the
// ledger now) as RFC 3339 times, from before to, to not after now.
func ParseReportPeriod(fromText, toText string, now time.Time) (from, to time.Time, err error) {
	bad := func(field, msg string, args ...any) error {
		return errs.Coded(errs.Invalid, "invalid_"+field, msg, args...).With("field", field)
	}
	if fromText == "" {
		return from, to, bad("from", "from is required (RFC 3339, like 2026-01-01T00:00:00Z)")
	}
	if from, err = time.Parse(time.RFC3339Nano, fromText); err != nil {
		return from, to, bad("from", "from must be an RFC 3339 time, like 2026-01-01T00:00:00Z")
	}
	from = from.UTC().Truncate(time.Microsecond)
	// Without to, the period ends after everything booked so far: the next
	// microsecond, as to is exclusive.
	to = now.UTC().Truncate(time.Microsecond).Add(time.Microsecond)
	if toText != "" {
		if to, err = time.Parse(time.RFC3339Nano, toText); err != nil {
			return from, to, bad("to", "to must be an RFC 3339 time, like 2026-02-01T00:00:00Z")
		}
		to = to.UTC().Truncate(time.Microsecond)
		if to.After(now) {
			return from, to, bad("to", "to %s is in the future: the ledger does not know it yet", toText)
		}
	}
	if !from.Before(to) {
		return from, to, bad("from", "from must be before to")
	}
	return from, to, nil
}

// activityExpr extracts an earning's activity type from its breakdown.
func activityExpr(e db.Engine) string {
	if e == db.Postgres {
		return `CASE WHEN t.type = 'earn' THEN COALESCE(t.breakdown::jsonb ->> 'activity_type', '') ELSE '' END`
	}
	return `CASE WHEN t.type = 'earn' THEN COALESCE(json_extract(t.breakdown, '$.activity_type'), '') ELSE '' END`
}

// Liability returns the liability report over [from, to).
func (s *Service) Liability(ctx context.Context, from, to time.Time) (LiabilityReport, error) {
	tx, err := s.db.ReadSnapshot(ctx)
	if err != nil {
		return LiabilityReport{}, internal("liability report", err)
	}
	defer func() { _ = tx.Rollback() }()
	rep := LiabilityReport{From: from, To: to, PointValues: []PointValueJSON{}}
	for _, v := range s.prog.PointValues {
		rep.PointValues = append(rep.PointValues, PointValueJSON{Currency: v.Currency, Value: v.String()})
	}
	if err := tx.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN `+effectiveExpr+` < $1 THEN p.amount ELSE 0 END), 0), COALESCE(SUM(p.amount), 0)
		FROM loyalty_postings p JOIN loyalty_transactions t ON t.id = p.transaction_id
		WHERE p.account LIKE 'member:%' AND `+effectiveExpr+` < $2`, db.Micros(from), db.Micros(to)).Scan(&rep.Opening, &rep.Closing); err != nil {
		return LiabilityReport{}, internal("liability report", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT t.type, p.account, `+activityExpr(s.db.Engine())+` AS activity, SUM(p.amount)
		FROM loyalty_postings p JOIN loyalty_transactions t ON t.id = p.transaction_id
		WHERE p.account NOT LIKE 'member:%' AND `+effectiveExpr+` >= $1 AND `+effectiveExpr+` < $2
		GROUP BY t.type, p.account, activity`, db.Micros(from), db.Micros(to))
	if err != nil {
		return LiabilityReport{}, internal("liability report", err)
	}
	defer rows.Close()
	totals := map[string]int64{}
	details := map[string]map[string]int64{}
	for rows.Next() {
		var (
			typ, account, activity string
			sum                    int64
		)
		if err := rows.Scan(&typ, &account, &activity, &sum); err != nil {
			return LiabilityReport{}, internal("liability report", err)
		}
		cat, detail, _ := liabilityCategory(typ, account, activity)
		// sum is what the non-member account received; members' change is -sum.
		change := -sum
		if outflows[cat] {
			change = sum
		}
		totals[cat] += change
		if detail != "" {
			if details[cat] == nil {
				details[cat] = map[string]int64{}
			}
			details[cat][detail] += change
		}
	}
	if err := rows.Err(); err != nil {
		return LiabilityReport{}, internal("liability report", err)
	}
	if err := s.liabilityLines(&rep, totals, details); err != nil {
		return LiabilityReport{}, internal("liability report", err)
	}
	if d := totals[LiabilityRedeemed] + totals[LiabilityExpired]; d > 0 && totals[LiabilityExpired] >= 0 {
		r := breakageRate(totals[LiabilityExpired], d)
		rep.BreakageRate = &r
	}
	return rep, nil
}

// liabilityLines fills rep.Lines in report order, valued in each currency.
func (s *Service) liabilityLines(rep *LiabilityReport, totals map[string]int64, details map[string]map[string]int64) error {
	add := func(cat, detail string, points int64) error {
		l := LiabilityLine{Category: cat, Detail: detail, Points: points, Money: []money.Money{}}
		for _, v := range s.prog.PointValues {
			m, err := v.Money(points)
			if err != nil {
				return err
			}
			l.Money = append(l.Money, m)
		}
		rep.Lines = append(rep.Lines, l)
		return nil
	}
	for _, cat := range liabilityOrder {
		points := totals[cat]
		switch cat {
		case LiabilityOpening:
			points = rep.Opening
		case LiabilityClosing:
			points = rep.Closing
		}
		if err := add(cat, "", points); err != nil {
			return err
		}
		keys := make([]string, 0, len(details[cat]))
		for k := range details[cat] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := add(cat, k, details[cat][k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// breakageRate is n/d (0 <= n <= d, d > 0) as a decimal with 4 places,
// rounded half up, in integers.
func breakageRate(n, d int64) string {
	twice, _ := money.MulDivFloor(n, 2*10000, d) // floor(2q), q = 10^4 n/d
	bp := (twice + 1) / 2                        // floor(q + 1/2)
	return fmt.Sprintf("%d.%04d", bp/10000, bp%10000)
}

// liabilityCSV writes the report as RFC 4180 CSV: a header, then one record
// per line with its points and its value in each currency (major units).
func liabilityCSV(w http.ResponseWriter, rep LiabilityReport) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="liability-%s-%s.csv"`,
		rep.From.Format("20060102T150405Z"), rep.To.Format("20060102T150405Z")))
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180's line break
	header := []string{"category", "detail", "points"}
	for _, v := range rep.PointValues {
		header = append(header, "value_"+v.Currency)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, l := range rep.Lines {
		rec := []string{l.Category, l.Detail, strconv.FormatInt(l.Points, 10)}
		for _, m := range l.Money {
			amount, _, _ := strings.Cut(m.String(), " ")
			rec = append(rec, amount)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// wantsCSV says whether the request's Accept header asks for text/csv.
func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/csv") {
			return true
		}
	}
	return false
}

func (s *Service) handleLiability(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from, to, err := ParseReportPeriod(q.Get("from"), q.Get("to"), s.now())
	if err != nil {
		return err
	}
	rep, err := s.Liability(r.Context(), from, to)
	if err != nil {
		return err
	}
	if wantsCSV(r) {
		return liabilityCSV(w, rep)
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
	return nil
}
