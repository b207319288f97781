package loyalty_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestPromotionBudgetConcurrent posts 64 earnings by 64 members at once under
// a promotion whose total budget covers fewer of them than run, and one
// without a budget beside it: the budgeted promotion never gives more than
// its budget, the earning that meets it gets what was left (budget 1,050 at
// 100 a time: ten full awards and one of 50), the bonuses named in the
// ledger add up to what the promotion counts as spent, and the books verify.
func TestPromotionBudgetConcurrent(t *testing.T) {
	const (
		earners = 64
		bonus   = 100
		budget  = 1050
	)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.promo(t, program.Promotion{ID: "budgeted", Name: "Hotel bonus while it lasts", ActivityTypes: []string{"hotel"}, FixedBonus: bonus, BudgetPoints: budget})
		e.promo(t, program.Promotion{ID: "open", Name: "Hotel bonus for all", ActivityTypes: []string{"hotel"}, FixedBonus: 10})
		for i := range earners {
			e.member(t, fmt.Sprintf("b%02d", i))
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results []loyalty.EarnResult
			start   = make(chan struct{})
		)
		for i := range earners {
			wg.Go(func() {
				<-start
				res, err := e.svc.Earn(context.Background(), fmt.Sprintf("b%02d", i), hotel(fmt.Sprintf("stay-%d", i), 10_000))
				if err != nil {
					t.Errorf("earn %d: %v", i, err)
					return
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}

		var fromResults, full, partial, open int64
		for _, r := range results {
			for _, p := range r.Promotions {
				switch {
				case p.ID == "open":
					open++
				case p.Points == bonus:
					full++
					fromResults += p.Points
				default:
					partial++
					fromResults += p.Points
					if p.Points != budget%bonus {
						t.Errorf("partial award %d, want %d", p.Points, budget%bonus)
					}
				}
			}
		}
		if fromResults != budget || full != budget/bonus || partial != 1 {
			t.Errorf("awarded %d in %d full and %d partial awards, want %d in %d and 1", fromResults, full, partial, budget, budget/bonus)
		}
		if open != earners {
			t.Errorf("the promotion without a budget applied %d times, want %d", open, earners)
		}

		// The ledger's breakdowns name the same bonuses.
		rows, err := d.Read().QueryContext(context.Background(), `SELECT breakdown FROM loyalty_transactions WHERE type = 'earn'`)
		if err != nil {
			t.Fatal(err)
		}
		var fromLedger int64
		for rows.Next() {
			var raw string
			var bd loyalty.Breakdown
			if err := rows.Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(raw), &bd); err != nil {
				t.Fatal(err)
			}
			for _, p := range bd.Promotions {
				if p.ID == "budgeted" {
					fromLedger += p.Points
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if fromLedger != budget {
			t.Errorf("ledger names %d bonus points of the budgeted promotion, want %d", fromLedger, budget)
		}
		if n := e.count(t, `SELECT COALESCE(SUM(points), 0) FROM loyalty_promotion_awards WHERE promotion_id = 'budgeted'`); n != budget {
			t.Errorf("awards table counts %d, want %d", n, budget)
		}

		var got loyalty.PromotionJSON
		r := e.do(t, http.MethodGet, "/v1/admin/promotions/budgeted", e.admin(t), nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET promotion: %d %s", r.status, r.raw)
		}
		r.json(t, &got)
		if got.BudgetPoints != budget || got.BudgetSpent != budget || got.BudgetLeft == nil || *got.BudgetLeft != 0 {
			t.Errorf("budget %d spent %d left %v, want %d, %d, 0", got.BudgetPoints, got.BudgetSpent, got.BudgetLeft, budget, budget)
		}
		var unbudgeted loyalty.PromotionJSON
		e.do(t, http.MethodGet, "/v1/admin/promotions/open", e.admin(t), nil).json(t, &unbudgeted)
		if unbudgeted.BudgetPoints != 0 || unbudgeted.BudgetLeft != nil {
			t.Errorf("promotion without a budget shows budget %d left %v", unbudgeted.BudgetPoints, unbudgeted.BudgetLeft)
		}

		// Spent, the promotion stops applying.
		res := e.earn(t, "b00", hotel("after", 10_000))
		for _, p := range res.Promotions {
			if p.ID == "budgeted" {
				t.Errorf("spent promotion still applied: %+v", p)
			}
		}
		e.verify(t)
	})
}

// TestPromotionBudgetAPI: the budget is set and changed through the admin
// API, shown with what is spent and left, given back by a reversal, counts
// what was given before it was set, and a negative one is refused; Verify
// finds a count beyond the awards.
func TestPromotionBudgetAPI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		body := map[string]any{"id": "spring", "name": "Spring stays", "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z",
			"activity_types": []string{"hotel"}, "fixed_bonus": 300, "budget_points": 500}
		if r := e.do(t, http.MethodPost, "/v1/admin/promotions", e.admin(t), body); r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		e.member(t, "x")
		e.member(t, "y")
		if got := e.earn(t, "x", hotel("x1", 10_000)).PromoBonus; got != 300 {
			t.Errorf("first bonus %d, want 300", got)
		}
		if got := e.earn(t, "y", hotel("y1", 10_000)).PromoBonus; got != 200 {
			t.Errorf("last bonus %d, want what was left, 200", got)
		}
		var p loyalty.PromotionJSON
		e.do(t, http.MethodGet, "/v1/admin/promotions/spring", e.admin(t), nil).json(t, &p)
		if p.BudgetSpent != 500 || p.BudgetLeft == nil || *p.BudgetLeft != 0 {
			t.Errorf("spent %d left %v, want 500 and 0", p.BudgetSpent, p.BudgetLeft)
		}
		// Raising the budget keeps what was spent and lets it apply again.
		body["budget_points"] = 800
		if r := e.do(t, http.MethodPut, "/v1/admin/promotions/spring", e.admin(t), body); r.status != http.StatusOK {
			t.Fatalf("update: %d %s", r.status, r.raw)
		}
		x2 := e.earn(t, "x", hotel("x2", 10_000))
		if got := x2.PromoBonus; got != 300 {
			t.Errorf("bonus after raising the budget %d, want 300", got)
		}
		e.do(t, http.MethodGet, "/v1/admin/promotions/spring", e.admin(t), nil).json(t, &p)
		if p.BudgetPoints != 800 || p.BudgetSpent != 800 || *p.BudgetLeft != 0 {
			t.Errorf("after raise: budget %d spent %d left %d, want 800, 800, 0", p.BudgetPoints, p.BudgetSpent, *p.BudgetLeft)
		}
		// A reversed earning gives its bonus back, to the budget as to the
		// member's cap.
		rev, err := e.svc.ReverseTransaction(context.Background(), x2.TransactionID, "cancelled stay")
		if err != nil {
			t.Fatal(err)
		}
		e.do(t, http.MethodGet, "/v1/admin/promotions/spring", e.admin(t), nil).json(t, &p)
		if p.BudgetSpent != 500 || *p.BudgetLeft != 300 {
			t.Errorf("after reversing %s: spent %d left %d, want 500 and 300", rev.TransactionID, p.BudgetSpent, *p.BudgetLeft)
		}
		body["budget_points"] = -1
		r := e.do(t, http.MethodPut, "/v1/admin/promotions/spring", e.admin(t), body)
		if r.status != http.StatusUnprocessableEntity || r.problem(t)["code"] != "invalid_promotion" {
			t.Errorf("negative budget: %d %s", r.status, r.raw)
		}
		e.verify(t)

		// A budget given later counts what the promotion had already given.
		late := map[string]any{"id": "late", "name": "Late budget", "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z",
			"activity_types": []string{"flight"}, "fixed_bonus": 250}
		if r := e.do(t, http.MethodPost, "/v1/admin/promotions", e.admin(t), late); r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		e.earn(t, "x", flight("fx", 1000, "Y"))
		e.earn(t, "y", flight("fy", 1000, "Y"))
		late["budget_points"] = 600
		e.do(t, http.MethodPut, "/v1/admin/promotions/late", e.admin(t), late).json(t, &p)
		if p.BudgetSpent != 500 || *p.BudgetLeft != 100 {
			t.Errorf("budget given later: spent %d left %d, want 500 and 100", p.BudgetSpent, *p.BudgetLeft)
		}
		if got := e.earn(t, "x", flight("fx2", 1000, "Y")).PromoBonus; got != 100 {
			t.Errorf("bonus under the later budget %d, want the 100 left", got)
		}
		e.verify(t)

		// Verify finds a budget that counts more than was awarded.
		if err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE loyalty_promotions SET budget_spent = budget_spent + 1 WHERE id = 'late'`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		problems, err := e.svc.Verify(context.Background())
		if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "promotion late: budget counts 601 points spent but its awards stand at 600") {
			t.Errorf("verify after damage: %q %v", problems, err)
		}
	})
}
