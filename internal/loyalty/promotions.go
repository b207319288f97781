package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Promotion is a stored promotion: the program's rule plus bookkeeping.
type Promotion struct {
	program.Promotion
	// BudgetSpent is the bonus points given so far against BudgetPoints
	// (counted only for a promotion with a budget).
	BudgetSpent          int64
	CreatedAt, UpdatedAt time.Time
}

const promotionColumnsP = `p.id, p.name, p.start_at, p.end_at, p.activity_types, p.tiers, p.multiplier_bp, p.fixed_bonus, p.cap_points, p.cap_times, p.budget_points`

func scanPromotionInto(r rowScanner, pr *program.Promotion, extra ...any) error {
	var start, end int64
	var types, tiers string
	dest := append([]any{&pr.ID, &pr.Name, &start, &end, &types, &tiers, &pr.MultiplierBP, &pr.FixedBonus, &pr.CapPoints, &pr.CapTimes, &pr.BudgetPoints}, extra...)
	if err := r.Scan(dest...); err != nil {
		return err
	}
	pr.Start, pr.End = db.FromMicros(start), db.FromMicros(end)
	pr.ActivityTypes = splitList(types)
	pr.Tiers = splitList(tiers)
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func (s *Service) validatePromotion(pr program.Promotion) error {
	if err := s.prog.ValidatePromotion(pr); err != nil {
		return errs.Coded(errs.Unprocessable, "invalid_promotion", "%s", err.Error())
	}
	if utf8Len(pr.Name) > 200 {
		return errs.Coded(errs.Unprocessable, "invalid_promotion", "promotion: name: at most 200 characters").With("field", "name")
	}
	return nil
}

func utf8Len(s string) int { return len([]rune(s)) }

// CreatePromotion stores a new promotion. A given id that is taken is errs
// Conflict "promotion_exists".
func (s *Service) CreatePromotion(ctx context.Context, pr program.Promotion) (Promotion, error) {
	if pr.ID == "" {
		pr.ID = newID()
	} else if !memberIDPattern.MatchString(pr.ID) {
		return Promotion{}, errs.Coded(errs.Unprocessable, "invalid_promotion_id", "id must be 1 to 64 letters, digits, '_', '.' or '-'").With("field", "id")
	}
	pr.Start, pr.End = pr.Start.UTC(), pr.End.UTC()
	if err := s.validatePromotion(pr); err != nil {
		return Promotion{}, err
	}
	now := s.now().UTC()
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_promotions
			(id, name, start_at, end_at, activity_types, tiers, multiplier_bp, fixed_bonus, cap_points, cap_times, created_at, updated_at, budget_points)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)`,
			pr.ID, pr.Name, db.Micros(pr.Start), db.Micros(pr.End), strings.Join(pr.ActivityTypes, ","), strings.Join(pr.Tiers, ","),
			pr.MultiplierBP, pr.FixedBonus, pr.CapPoints, pr.CapTimes, db.Micros(now), pr.BudgetPoints)
		return err
	})
	if err != nil {
		if db.IsUniqueViolation(err) {
			return Promotion{}, errs.Coded(errs.Conflict, "promotion_exists", "a promotion with id %q already exists", pr.ID)
		}
		return Promotion{}, internal("create promotion", err)
	}
	return Promotion{Promotion: pr, CreatedAt: now, UpdatedAt: now}, nil
}

// UpdatePromotion replaces a promotion's definition. What members already
// received from it stays counted against the (new) caps.
func (s *Service) UpdatePromotion(ctx context.Context, pr program.Promotion) (Promotion, error) {
	pr.Start, pr.End = pr.Start.UTC(), pr.End.UTC()
	if err := s.validatePromotion(pr); err != nil {
		return Promotion{}, err
	}
	now := s.now().UTC()
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE loyalty_promotions SET name = $2, start_at = $3, end_at = $4, activity_types = $5,
			tiers = $6, multiplier_bp = $7, fixed_bonus = $8, cap_points = $9, cap_times = $10, updated_at = $11, budget_points = $12,
			budget_spent = `+budgetSpentOnUpdate+`
			WHERE id = $1 AND deleted_at IS NULL`,
			pr.ID, pr.Name, db.Micros(pr.Start), db.Micros(pr.End), strings.Join(pr.ActivityTypes, ","), strings.Join(pr.Tiers, ","),
			pr.MultiplierBP, pr.FixedBonus, pr.CapPoints, pr.CapTimes, db.Micros(now), pr.BudgetPoints)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return promotionNotFound(pr.ID)
		}
		return nil
	})
	if err != nil {
		return Promotion{}, internal("update promotion", err)
	}
	return s.GetPromotion(ctx, pr.ID)
}

// DeletePromotion withdraws a promotion. The row is kept (soft delete):
// breakdowns of past earnings name it.
func (s *Service) DeletePromotion(ctx context.Context, id string) error {
	now := s.now().UTC()
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE loyalty_promotions SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL`, id, db.Micros(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return promotionNotFound(id)
		}
		return nil
	})
	return internal("delete promotion", err)
}

func promotionNotFound(id string) error {
	return errs.Coded(errs.NotFound, "promotion_not_found", "no promotion with id %q", id).With("promotion_id", id)
}

// GetPromotion returns a promotion that has not been deleted.
func (s *Service) GetPromotion(ctx context.Context, id string) (Promotion, error) {
	var p Promotion
	var created, updated int64
	err := scanPromotionInto(s.db.Read().QueryRowContext(ctx, `SELECT `+promotionColumnsP+`, p.budget_spent, p.created_at, p.updated_at
		FROM loyalty_promotions p WHERE p.id = $1 AND p.deleted_at IS NULL`, id), &p.Promotion, &p.BudgetSpent, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Promotion{}, promotionNotFound(id)
	}
	if err != nil {
		return Promotion{}, internal("get promotion", err)
	}
	p.CreatedAt, p.UpdatedAt = db.FromMicros(created), db.FromMicros(updated)
	return p, nil
}

// ListPromotions returns the promotions that have not been deleted, by start.
func (s *Service) ListPromotions(ctx context.Context) ([]Promotion, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+promotionColumnsP+`, p.budget_spent, p.created_at, p.updated_at
		FROM loyalty_promotions p WHERE p.deleted_at IS NULL ORDER BY p.start_at, p.id`)
	if err != nil {
		return nil, internal("list promotions", err)
	}
	defer rows.Close()
	out := []Promotion{}
	for rows.Next() {
		var p Promotion
		var created, updated int64
		if err := scanPromotionInto(rows, &p.Promotion, &p.BudgetSpent, &created, &updated); err != nil {
			return nil, internal("list promotions", err)
		}
		p.CreatedAt, p.UpdatedAt = db.FromMicros(created), db.FromMicros(updated)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("list promotions", err)
	}
	return out, nil
}
