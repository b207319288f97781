package loyalty_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestMembersAPI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		svc := e.service(t)

		r := e.do(t, "POST", "/v1/members", svc, map[string]any{"id": "alice", "name": "Alice", "email": "alice@example.com"})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		var m loyalty.MemberJSON
		r.json(t, &m)
		want := loyalty.MemberJSON{
			ID: "alice", Name: "Alice", Email: "alice@example.com", Tier: "blue", TierName: "Blue", StatusYear: 2026,
			NextTier: &loyalty.NextTierProgress{Tier: "silver", Threshold: 25000, PointsNeeded: 25000}, CreatedAt: startTime,
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("created member (-want +got):\n%s", diff)
		}
		// Generated id.
		r = e.do(t, "POST", "/v1/members", e.admin(t), map[string]any{"name": "Bob", "email": "bob@example.com"})
		if r.status != http.StatusCreated {
			t.Fatalf("create without id: %d %s", r.status, r.raw)
		}
		var bob loyalty.MemberJSON
		r.json(t, &bob)
		if bob.ID == "" {
			t.Error("no id generated")
		}

		for _, c := range []struct {
			name, tok string
			body      any
			status    int
			code      string
		}{
			{"duplicate id", svc, map[string]any{"id": "alice", "name": "A", "email": "a@example.com"}, 409, "member_exists"},
			{"bad email", svc, map[string]any{"name": "A", "email": "nope"}, 422, "invalid_email"},
			{"no name", svc, map[string]any{"email": "a@example.com"}, 422, "invalid_name"},
			{"bad id", svc, map[string]any{"id": "a b", "name": "A", "email": "a@example.com"}, 422, "invalid_member_id"},
			{"unknown field", svc, map[string]any{"name": "A", "email": "a@example.com", "tier": "gold"}, 400, "unknown_field"},
			{"member token", e.token(t, auth.ScopeMember, "alice"), map[string]any{"name": "A", "email": "a@example.com"}, 403, "forbidden"},
			{"no token", "", map[string]any{"name": "A", "email": "a@example.com"}, 401, "unauthenticated"},
		} {
			r := e.do(t, "POST", "/v1/members", c.tok, c.body)
			if r.status != c.status || r.problem(t)["code"] != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
			}
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_members`); n != 2 {
			t.Errorf("%d members, want 2", n)
		}

		for _, c := range []struct {
			name, tok, path string
			status          int
		}{
			{"self", e.token(t, auth.ScopeMember, "alice"), "/v1/members/alice", 200},
			{"other member", e.token(t, auth.ScopeMember, bob.ID), "/v1/members/alice", 403},
			{"service", svc, "/v1/members/alice", 200},
			{"admin", e.admin(t), "/v1/members/alice", 200},
			{"unknown", e.admin(t), "/v1/members/nobody", 404},
			{"anonymous", "", "/v1/members/alice", 401},
			{"other member's statement", e.token(t, auth.ScopeMember, bob.ID), "/v1/members/alice/statement", 403},
		} {
			r := e.do(t, "GET", c.path, c.tok, nil)
			if r.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
			}
			if c.status == 200 && !strings.Contains(string(r.raw), "alice@example.com") {
				t.Errorf("%s: no email in %s", c.name, r.raw)
			}
			if c.status != 200 && strings.Contains(string(r.raw), "alice@example.com") {
				t.Errorf("%s: email leaked in %s", c.name, r.raw)
			}
		}
	})
}

func activity(typ, ext string, details any) map[string]any {
	return map[string]any{"type": typ, "external_id": ext, "occurred_at": startTime.Add(-time.Hour).Format(time.RFC3339), typ: details}
}

func usdJSON(cents int64) map[string]any { return map[string]any{"amount": cents, "currency": "USD"} }

func TestActivitiesAPI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		svc := e.service(t)
		var balance int64
		for _, c := range []struct {
			body    map[string]any
			total   int64
			pending bool // purchase points pend for the 30-day return window
		}{
			{activity("flight", "f1", map[string]any{"distance_miles": 2475, "fare_class": "Y", "cabin": "economy", "origin": "JFK", "destination": "LAX"}), 2475, false},
			{activity("hotel", "h1", map[string]any{"amount": usdJSON(34500), "nights": 2}), 3450, false},
			{activity("card_spend", "c1", map[string]any{"amount": usdJSON(10000), "merchant_category": "3001"}), 200, false},
			{activity("purchase", "p1", map[string]any{"amount": usdJSON(4999), "order_id": "o1"}), 49, true},
		} {
			r := e.do(t, "POST", "/v1/members/m/activities", svc, c.body)
			if r.status != http.StatusCreated {
				t.Fatalf("%v: %d %s", c.body["type"], r.status, r.raw)
			}
			var res map[string]any
			r.json(t, &res)
			if c.pending {
				if res["pending_points"] != float64(c.total) || res["vests_at"] != startTime.Add(-time.Hour).AddDate(0, 0, 30).Format(time.RFC3339) {
					t.Errorf("%v: %s, want %d points pending until %s", c.body["type"], r.raw, c.total, startTime.Add(-time.Hour).AddDate(0, 0, 30).Format(time.RFC3339))
				}
			} else {
				balance += c.total
				if _, ok := res["pending_points"]; ok {
					t.Errorf("%v: %s pends", c.body["type"], r.raw)
				}
			}
			for _, k := range []string{"transaction_id", "base_points", "tier_bonus", "promo_bonus", "total_points_earned", "new_balance", "trace_id", "promotions"} {
				if _, ok := res[k]; !ok {
					t.Errorf("%v: response lacks %s: %s", c.body["type"], k, r.raw)
				}
			}
			if res["total_points_earned"] != float64(c.total) || res["new_balance"] != float64(balance) {
				t.Errorf("%v: %s, want total %d balance %d", c.body["type"], r.raw, c.total, balance)
			}
			if tid, _ := res["trace_id"].(string); len(tid) != 32 {
				t.Errorf("%v: trace_id %q", c.body["type"], tid)
			}
		}

		txBefore := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`)
		for _, c := range []struct {
			name   string
			tok    string
			body   any
			status int
			code   string
		}{
			{"unknown type", svc, activity("train", "x1", map[string]any{}), 400, "unknown_field"},
			{"unknown type, no details", svc, map[string]any{"type": "train", "external_id": "x1"}, 422, "unknown_activity_type"},
			{"missing details", svc, map[string]any{"type": "flight", "external_id": "x1"}, 422, "missing_details"},
			{"other type's details", svc, map[string]any{"type": "hotel", "external_id": "x1", "hotel": map[string]any{"amount": usdJSON(100)}, "flight": map[string]any{}}, 422, "unexpected_details"},
			{"missing amount", svc, activity("hotel", "x1", map[string]any{"nights": 1}), 422, "missing_amount"},
			{"wrong currency", svc, activity("hotel", "x1", map[string]any{"amount": map[string]any{"amount": 100, "currency": "EUR"}}), 422, "currency_not_accepted"},
			{"unknown fare class", svc, activity("flight", "x1", map[string]any{"distance_miles": 100, "fare_class": "X"}), 422, "unknown_fare_class"},
			{"bad distance", svc, activity("flight", "x1", map[string]any{"distance_miles": -5, "fare_class": "Y"}), 422, "invalid_activity"},
			{"bad mcc", svc, activity("card_spend", "x1", map[string]any{"amount": usdJSON(100), "merchant_category": "abc"}), 422, "invalid_merchant_category"},
			{"bad occurred_at", svc, map[string]any{"type": "hotel", "external_id": "x1", "occurred_at": "yesterday", "hotel": map[string]any{"amount": usdJSON(100)}}, 422, "invalid_occurred_at"},
			{"zero occurred_at", svc, map[string]any{"type": "hotel", "external_id": "x1", "occurred_at": "0001-01-01T00:00:00Z", "hotel": map[string]any{"amount": usdJSON(100)}}, 422, "invalid_occurred_at"},
			{"zero occurred_at, offset", svc, map[string]any{"type": "hotel", "external_id": "x1", "occurred_at": "0001-01-01T02:00:00+02:00", "hotel": map[string]any{"amount": usdJSON(100)}}, 422, "invalid_occurred_at"},
			{"year 1 occurred_at", svc, map[string]any{"type": "hotel", "external_id": "x1", "occurred_at": "0001-06-01T00:00:00Z", "hotel": map[string]any{"amount": usdJSON(100)}}, 422, "invalid_occurred_at"},
			{"future occurred_at", svc, map[string]any{"type": "hotel", "external_id": "x1", "occurred_at": startTime.Add(time.Hour).Format(time.RFC3339), "hotel": map[string]any{"amount": usdJSON(100)}}, 422, "invalid_occurred_at"},
			{"missing external_id", svc, map[string]any{"type": "hotel", "hotel": map[string]any{"amount": usdJSON(100)}}, 422, "invalid_external_id"},
			{"wrong json type", svc, `{"type": "flight", "external_id": "x1", "flight": {"distance_miles": "far"}}`, 400, "invalid_field"},
			{"malformed", svc, `{"type":`, 400, "invalid_json"},
			{"unknown member", svc, activity("hotel", "x1", map[string]any{"amount": usdJSON(100)}), 404, "member_not_found"},
			{"member may not post", e.token(t, auth.ScopeMember, "m"), activity("hotel", "x1", map[string]any{"amount": usdJSON(100)}), 403, "forbidden"},
		} {
			path := "/v1/members/m/activities"
			if c.code == "member_not_found" {
				path = "/v1/members/ghost/activities"
			}
			r := e.do(t, "POST", path, c.tok, c.body)
			p := r.problem(t)
			if r.status != c.status || p["code"] != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
			}
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`); n != txBefore {
			t.Errorf("rejected activities wrote %d transactions", n-txBefore)
		}
		if m := e.get(t, "m"); m.Balance != balance {
			t.Errorf("balance %d, want %d", m.Balance, balance)
		}
		e.verify(t)
	})
}

func TestExternalIDRepeat(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.member(t, "n")
		svc := e.service(t)
		body := activity("flight", "PNR1-seg1", map[string]any{"distance_miles": 1000, "fare_class": "Y"})
		first := e.do(t, "POST", "/v1/members/m/activities", svc, body)
		if first.status != http.StatusCreated {
			t.Fatalf("first: %d %s", first.status, first.raw)
		}
		e.clock.Set(startTime.Add(time.Minute))
		again := e.do(t, "POST", "/v1/members/m/activities", svc, body)
		if again.status != http.StatusOK || string(again.raw) != string(first.raw) {
			t.Errorf("repeat: %d %s\nwant 200 %s", again.status, again.raw, first.raw)
		}
		if m := e.get(t, "m"); m.Balance != 1000 {
			t.Errorf("balance %d after a repeat, want 1000", m.Balance)
		}
		// Same id, different activity: a conflict, nothing credited.
		body2 := activity("flight", "PNR1-seg1", map[string]any{"distance_miles": 3000, "fare_class": "Y"})
		if r := e.do(t, "POST", "/v1/members/m/activities", svc, body2); r.status != 409 || r.problem(t)["code"] != "external_id_conflict" {
			t.Errorf("reused id: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/members/n/activities", svc, body); r.status != 409 {
			t.Errorf("same id for another member: %d %s", r.status, r.raw)
		}
		// Another source may use the same external id.
		other := e.token(t, auth.ScopeService, "other-airline")
		if r := e.do(t, "POST", "/v1/members/m/activities", other, body); r.status != http.StatusCreated {
			t.Errorf("other source: %d %s", r.status, r.raw)
		}
		if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions`); n != 2 {
			t.Errorf("%d transactions, want 2", n)
		}
		e.verify(t)
	})
}

func TestStatementPagination(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.member(t, "other")
		const n = 7
		for i := range n {
			e.earn(t, "m", flight(fmt.Sprintf("f%d", i), int64(1000+i), "Y"))
			e.earn(t, "other", flight(fmt.Sprintf("o%d", i), 1000, "Y"))
		}
		tok := e.token(t, auth.ScopeMember, "m")
		fetch := func(q string) loyalty.Statement {
			t.Helper()
			r := e.do(t, "GET", "/v1/members/m/statement"+q, tok, nil)
			if r.status != 200 {
				t.Fatalf("statement%s: %d %s", q, r.status, r.raw)
			}
			var st loyalty.Statement
			r.json(t, &st)
			return st
		}
		page1 := fetch("?limit=3")
		if len(page1.Entries) != 3 || page1.NextCursor == "" {
			t.Fatalf("page 1: %+v", page1)
		}
		// New movements after page 1 must not shift page 2.
		e.earn(t, "m", flight("late", 5000, "Y"))
		var all []loyalty.StatementEntry
		all = append(all, page1.Entries...)
		cursor := page1.NextCursor
		for cursor != "" {
			p := fetch("?limit=3&cursor=" + cursor)
			all = append(all, p.Entries...)
			cursor = p.NextCursor
		}
		if len(all) != n {
			t.Fatalf("%d entries over the pages, want %d", len(all), n)
		}
		for i, en := range all {
			if want := int64(1000 + n - 1 - i); en.Points != want || en.Type != "earn" || len(en.TraceID) != 0 && len(en.TraceID) != 32 {
				t.Errorf("entry %d: %+v, want %d points", i, en, want)
			}
			if i+1 < len(all) && en.BalanceAfter-en.Points != all[i+1].BalanceAfter {
				t.Errorf("entry %d: balance_after %d - %d != next %d", i, en.BalanceAfter, en.Points, all[i+1].BalanceAfter)
			}
			if len(en.Breakdown) == 0 || !strings.Contains(string(en.Breakdown), `"base_points"`) {
				t.Errorf("entry %d: breakdown %s", i, en.Breakdown)
			}
		}
		if last := all[len(all)-1]; last.BalanceAfter != last.Points {
			t.Errorf("oldest entry: balance_after %d != points %d", last.BalanceAfter, last.Points)
		}
		full := fetch("")
		if len(full.Entries) != n+1 || full.NextCursor != "" || full.Entries[0].BalanceAfter != e.get(t, "m").Balance {
			t.Errorf("default page: %d entries, cursor %q, top %+v", len(full.Entries), full.NextCursor, full.Entries[0])
		}
		for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?cursor=bogus", "?cursor=cDE6LTE"} {
			if r := e.do(t, "GET", "/v1/members/m/statement"+q, tok, nil); r.status != 400 {
				t.Errorf("%s: %d %s", q, r.status, r.raw)
			}
		}
	})
}

func TestPromotionsAPI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		adm := e.admin(t)
		body := map[string]any{
			"id": "spring", "name": "Spring double", "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z",
			"activity_types": []string{"flight"}, "multiplier_bp": 20000, "cap_points": 10000,
		}
		r := e.do(t, "POST", "/v1/admin/promotions", adm, body)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		var p loyalty.PromotionJSON
		r.json(t, &p)
		if p.ID != "spring" || p.MultiplierBP != 20000 || p.CapPoints != 10000 || !p.Start.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("created %+v", p)
		}
		if r := e.do(t, "POST", "/v1/admin/promotions", adm, body); r.status != 409 {
			t.Errorf("duplicate: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/admin/promotions", e.service(t), body); r.status != 403 {
			t.Errorf("service token: %d", r.status)
		}
		for name, b := range map[string]map[string]any{
			"both kinds":   {"name": "x", "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z", "activity_types": []string{"flight"}, "multiplier_bp": 20000, "fixed_bonus": 5},
			"bad window":   {"name": "x", "start": "2026-04-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "activity_types": []string{"flight"}, "fixed_bonus": 5},
			"bad time":     {"name": "x", "start": "March", "end": "2026-03-01T00:00:00Z", "activity_types": []string{"flight"}, "fixed_bonus": 5},
			"unknown tier": {"name": "x", "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z", "activity_types": []string{"flight"}, "tiers": []string{"diamond"}, "fixed_bonus": 5},
			"unknown type": {"name": "x", "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z", "activity_types": []string{"train"}, "fixed_bonus": 5},
		} {
			if r := e.do(t, "POST", "/v1/admin/promotions", adm, b); r.status != 422 || r.problem(t)["code"] != "invalid_promotion" {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
		body["name"] = "Spring triple"
		body["multiplier_bp"] = 30000
		delete(body, "id")
		if r := e.do(t, "PUT", "/v1/admin/promotions/spring", adm, body); r.status != 200 || !strings.Contains(string(r.raw), "Spring triple") {
			t.Errorf("update: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "PUT", "/v1/admin/promotions/nope", adm, body); r.status != 404 {
			t.Errorf("update unknown: %d %s", r.status, r.raw)
		}
		r = e.do(t, "GET", "/v1/admin/promotions", adm, nil)
		if r.status != 200 || !strings.Contains(string(r.raw), `"multiplier_bp":30000`) {
			t.Errorf("list: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "DELETE", "/v1/admin/promotions/spring", adm, nil); r.status != 204 {
			t.Errorf("delete: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "GET", "/v1/admin/promotions/spring", adm, nil); r.status != 404 {
			t.Errorf("get deleted: %d %s", r.status, r.raw)
		}
		ps, err := e.svc.ListPromotions(context.Background())
		if err != nil || len(ps) != 0 {
			t.Errorf("list after delete: %v %v", ps, err)
		}
	})
}
