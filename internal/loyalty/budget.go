package loyalty

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// spendBudget takes up to bonus points from a promotion's total budget in the
// earning's transaction and returns what it may award: bonus while it fits,
// what is left for the earning that meets the budget, 0 once it is spent.
//
// The promotion's row is locked (FOR UPDATE on PostgreSQL; on SQLite the
// transaction already holds the single write lock) from the read of
// budget_spent until the earning commits, so concurrent earnings by
// different members queue on it and the sum they award never passes the
// budget; a rolled-back earning gives its share back with everything else.
// Earnings lock promotions in the order applyPromotions reads them (start,
// id), after the member, so two earnings cannot wait on each other.
//
// Only promotions with a budget take the lock: the others need no
// promotion-wide count, and earnings under them do not queue.
func (s *Service) spendBudget(ctx context.Context, tx *db.Tx, r promoRow, bonus int64) (int64, error) {
	if r.BudgetPoints <= 0 || bonus <= 0 {
		return bonus, nil
	}
	var spent int64
	if err := tx.QueryRowContext(ctx, `SELECT budget_spent FROM loyalty_promotions WHERE id = $1`+tx.ForUpdate(), r.ID).Scan(&spent); err != nil {
		return 0, fmt.Errorf("read budget of promotion %s: %w", r.ID, err)
	}
	grant := r.BudgetedBonus(bonus, spent)
	if grant < bonus {
		// Said once per earning that found the budget short: the partial
		// last award, and every earning after it until the promotion ends.
		trace.SpanFromContext(ctx).AddEvent("loyalty.promotion_budget_exhausted", trace.WithAttributes(
			attribute.String("loyalty.promotion_id", r.ID),
			attribute.Int64("loyalty.promotion_budget", r.BudgetPoints),
			attribute.Int64("loyalty.promo_bonus_points", grant),
		))
	}
	if grant <= 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE loyalty_promotions SET budget_spent = budget_spent + $2 WHERE id = $1`, r.ID, grant); err != nil {
		return 0, fmt.Errorf("spend budget of promotion %s: %w", r.ID, err)
	}
	return grant, nil
}

// returnBudget gives a reversed earning's bonus back to its promotion's
// budget, as the reversal gives it back to the member's cap: budget_spent
// counts the bonus that stands. A promotion without a budget counts
// nothing, and spent never goes below 0. The row lock comes after the
// member's, in the same order as earnings take them.
func returnBudget(ctx context.Context, tx *db.Tx, promotionID string, points int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE loyalty_promotions SET budget_spent = CASE WHEN budget_spent > $2 THEN budget_spent - $2 ELSE 0 END
		WHERE id = $1 AND budget_points > 0`, promotionID, points)
	if err != nil {
		return fmt.Errorf("return budget of promotion %s: %w", promotionID, err)
	}
	return nil
}

// budgetSpentOnUpdate is budget_spent after UpdatePromotion ($1 the id, $12
// the new budget): a budget given to a promotion that had none starts from
// the bonus it has already given (its awards), so it caps the promotion's
// total, not what comes after; otherwise the count carries on. Earnings
// under a promotion without a budget take no lock on it, so one committing
// meanwhile may be missed: the count can only fall short of the awards,
// never pass them (Verify checks that).
const budgetSpentOnUpdate = `CASE WHEN budget_points = 0 AND CAST($12 AS BIGINT) > 0
	THEN (SELECT COALESCE(SUM(w.points), 0) FROM loyalty_promotion_awards w WHERE w.promotion_id = CAST($1 AS TEXT))
	ELSE budget_spent END`
