// Package catalog holds the shop's products: id, SKU, name and price. It serves
// the public listing (with stock, read from the inventory table) and admin CRUD,
// and seeds a small travel-shop catalogue on first start.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/bounds"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Product is a thing the shop sells.
type Product struct {
	ID        string      `json:"id"`
	SKU       string      `json:"sku"`
	Name      string      `json:"name"`
	Price     money.Money `json:"price"`
	Available int64       `json:"available"`
}

// Config holds the Service's dependencies.
type Config struct {
	DB             *db.DB
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
}

// Service is the catalog.
type Service struct {
	db     *db.DB
	now    func() time.Time
	tracer trace.Tracer
	log    *slog.Logger
}

// New returns a catalog Service.
func New(cfg Config) *Service {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	return &Service{db: cfg.DB, now: cfg.Now, tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/catalog"), log: cfg.Logger}
}

var skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NewProduct is the input of Create and Update.
type NewProduct struct {
	SKU   string
	Name  string
	Price money.Money
	// Available, when set, is the initial stock (Create only).
	Available *int64
}

func (p NewProduct) validate() error {
	if !skuPattern.MatchString(p.SKU) {
		return errs.Coded(errs.Invalid, "invalid_field", "sku must be 1-64 letters, digits, '.', '_' or '-'").With("field", "sku")
	}
	if n := strings.TrimSpace(p.Name); n == "" || len(p.Name) > 200 {
		return errs.Coded(errs.Invalid, "invalid_field", "name must be 1-200 characters").With("field", "name")
	}
	if err := p.Price.ValidateNonNegative(); err != nil {
		return errs.Coded(errs.Invalid, "invalid_field", "price must be a non-negative amount in a known currency").With("field", "price")
	}
	if p.Price.Amount > bounds.MaxPriceAmount {
		return errs.Coded(errs.Invalid, "invalid_field", "price must be at most %d minor units", bounds.MaxPriceAmount).
			With("field", "price").With("maximum", bounds.MaxPriceAmount)
	}
	if p.Available != nil && (*p.Available < 0 || *p.Available > bounds.MaxStock) {
		return errs.Coded(errs.Invalid, "invalid_field", "available must be between 0 and %d", bounds.MaxStock).
			With("field", "available").With("minimum", 0).With("maximum", bounds.MaxStock)
	}
	return nil
}

func notFound(id string) error {
	return errs.Coded(errs.NotFound, "product_not_found", "product %s does not exist", id).With("product_id", id)
}

// Create adds a product (and its stock row).
func (s *Service) Create(ctx context.Context, np NewProduct) (Product, error) {
	if err := np.validate(); err != nil {
		return Product{}, err
	}
	p := Product{ID: "prod_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20], SKU: np.SKU, Name: np.Name, Price: np.Price}
	if np.Available != nil {
		p.Available = *np.Available
	}
	now := db.Micros(s.now())
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO products (id, sku, name, price_amount, price_currency, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`, p.ID, p.SKU, p.Name, p.Price.Amount, p.Price.Currency, now); err != nil {
			if db.IsUniqueViolation(err) {
				return errs.Coded(errs.Conflict, "sku_taken", "a product with sku %s already exists", p.SKU).With("field", "sku")
			}
			return fmt.Errorf("catalog: create: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO inventory (product_id, available, updated_at) VALUES ($1, $2, $3)`, p.ID, p.Available, now); err != nil {
			return fmt.Errorf("catalog: create stock: %w", err)
		}
		return nil
	})
	return p, err
}

// Update changes a product's SKU, name and price. Carts keep the price captured
// when an item was added; checkout then rejects the stale price.
func (s *Service) Update(ctx context.Context, id string, np NewProduct) (Product, error) {
	if err := np.validate(); err != nil {
		return Product{}, err
	}
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE products SET sku = $2, name = $3, price_amount = $4, price_currency = $5, updated_at = $6 WHERE id = $1`,
			id, np.SKU, np.Name, np.Price.Amount, np.Price.Currency, db.Micros(s.now()))
		if err != nil {
			if db.IsUniqueViolation(err) {
				return errs.Coded(errs.Conflict, "sku_taken", "a product with sku %s already exists", np.SKU).With("field", "sku")
			}
			return fmt.Errorf("catalog: update %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(id)
		}
		return nil
	})
	if err != nil {
		return Product{}, err
	}
	return s.Get(ctx, id)
}

// Delete removes a product and its stock row. Carts holding it fail validation.
func (s *Service) Delete(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM products WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("catalog: delete %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM inventory WHERE product_id = $1`, id); err != nil {
			return fmt.Errorf("catalog: delete stock %s: %w", id, err)
		}
		return nil
	})
}

// selectProducts reads stock within its bounds (bounds.ClampSQL): a stock row
// damaged before the bounds existed (on SQLite, a REAL left by an overflowing
// sum) must not take the public catalogue down; verify names the row.
var selectProducts = `SELECT p.id, p.sku, p.name, p.price_amount, p.price_currency, ` +
	bounds.ClampSQL("COALESCE(i.available, 0)", 0, bounds.MaxStock) + `
	FROM products p LEFT JOIN inventory i ON i.product_id = p.id`

func scanProduct(sc interface{ Scan(...any) error }) (Product, error) {
	var p Product
	err := sc.Scan(&p.ID, &p.SKU, &p.Name, &p.Price.Amount, &p.Price.Currency, &p.Available)
	return p, err
}

// Get returns one product with its available stock.
func (s *Service) Get(ctx context.Context, id string) (Product, error) {
	p, err := scanProduct(s.db.Read().QueryRowContext(ctx, selectProducts+` WHERE p.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, notFound(id)
	}
	if err != nil {
		return Product{}, fmt.Errorf("catalog: get %s: %w", id, err)
	}
	return p, nil
}

// List returns every product, by SKU.
func (s *Service) List(ctx context.Context) ([]Product, error) {
	rows, err := s.db.Read().QueryContext(ctx, selectProducts+` ORDER BY p.sku`)
	if err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	defer rows.Close()
	out := []Product{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: list: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	return out, nil
}

// Prices returns the current price of each product that exists among ids;
// missing products are absent from the map. The cart uses it to capture and
// to verify prices.
func (s *Service) Prices(ctx context.Context, ids []string) (map[string]money.Money, error) {
	out := make(map[string]money.Money, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ph, args := db.InList(1, ids)
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, price_amount, price_currency FROM products WHERE id IN (`+ph+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: prices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var m money.Money
		if err := rows.Scan(&id, &m.Amount, &m.Currency); err != nil {
			return nil, fmt.Errorf("catalog: prices: %w", err)
		}
		out[id] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: prices: %w", err)
	}
	return out, nil
}

type demoProduct struct {
	id, sku, name string
	cents, stock  int64
}

var demo = []demoProduct{
	{"prod_demo_backpack", "TRV-BACKPACK-40L", "Carry-on backpack 40 L", 12900, 120},
	{"prod_demo_pillow", "TRV-PILLOW-MEMORY", "Memory-foam neck pillow", 2900, 300},
	{"prod_demo_adapter", "TRV-ADAPTER-UNIV", "Universal travel adapter", 3490, 250},
	{"prod_demo_cubes", "TRV-CUBES-SET4", "Packing cubes, set of 4", 3990, 200},
	{"prod_demo_tags", "TRV-TAGS-LEATHER", "Leather luggage tags (pair)", 1890, 400},
	{"prod_demo_bottle", "TRV-BOTTLE-FOLD", "Foldable water bottle", 1590, 350},
	{"prod_demo_mask", "TRV-MASK-SLEEP", "Contoured sleep mask", 1290, 500},
	{"prod_demo_scale", "TRV-SCALE-LUGGAGE", "Digital luggage scale", 2190, 150},
}

// SeedDemo inserts the demo travel-shop products with stock when the catalog is
// empty and reports how many it inserted. Fixed ids and ON CONFLICT DO NOTHING
// make it idempotent, and safe when two replicas start at once.
func (s *Service) SeedDemo(ctx context.Context) (int, error) {
	var count int64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM products`).Scan(&count); err != nil {
		return 0, fmt.Errorf("catalog: seed: %w", err)
	}
	if count > 0 {
		return 0, nil
	}
	inserted := 0
	now := db.Micros(s.now())
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		inserted = 0
		for _, p := range demo {
			res, err := tx.ExecContext(ctx, `INSERT INTO products (id, sku, name, price_amount, price_currency, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 'USD', $5, $5) ON CONFLICT DO NOTHING`, p.id, p.sku, p.name, p.cents, now)
			if err != nil {
				return fmt.Errorf("catalog: seed %s: %w", p.sku, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				inserted++
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO inventory (product_id, available, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				p.id, p.stock, now); err != nil {
				return fmt.Errorf("catalog: seed stock %s: %w", p.sku, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if inserted > 0 {
		s.log.InfoContext(ctx, "seeded demo catalog", "products", inserted)
	}
	return inserted, nil
}

// Products returns the products that exist among ids, by id.
func (s *Service) Products(ctx context.Context, ids []string) (map[string]Product, error) {
	out := make(map[string]Product, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ph, args := db.InList(1, ids)
	rows, err := s.db.Read().QueryContext(ctx, selectProducts+` WHERE p.id IN (`+ph+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: products: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: products: %w", err)
		}
		out[p.ID] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: products: %w", err)
	}
	return out, nil
}
