// Package cart holds shopping carts (a member's or a guest's): items with the
// unit price captured when added. Validate is the checkout's first step: it
// takes the cart for one checkout and checks every price against the catalog.
package cart

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// MaxQuantity bounds one line's quantity.
const MaxQuantity = 1000

// MaxLines bounds the number of distinct products in a cart.
const MaxLines = 100

// Prices is what the cart needs from the catalog: current prices of the
// products that exist among ids (missing ones are absent).
type Prices interface {
	Prices(ctx context.Context, ids []string) (map[string]money.Money, error)
}

// Item is one cart line.
type Item struct {
	ProductID string      `json:"product_id"`
	Quantity  int64       `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
}

// Cart is a member's (MemberID set) or a guest's cart.
type Cart struct {
	ID       string      `json:"id"`
	MemberID string      `json:"member_id,omitempty"`
	Items    []Item      `json:"items"`
	Total    money.Money `json:"total"`
	// CheckoutID is set while a checkout holds the cart (and after it succeeded).
	CheckoutID string `json:"checkout_id,omitempty"`
}

// PriceChange is a line whose captured price no longer matches the catalog.
type PriceChange struct {
	ProductID string      `json:"product_id"`
	OldPrice  money.Money `json:"old_price"`
	NewPrice  money.Money `json:"new_price"`
}

// Config holds the Service's dependencies.
type Config struct {
	DB             *db.DB
	Catalog        Prices
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
}

// Service manages carts.
type Service struct {
	db      *db.DB
	catalog Prices
	now     func() time.Time
	tracer  trace.Tracer
	log     *slog.Logger
}

// New returns a cart Service.
func New(cfg Config) *Service {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	return &Service{db: cfg.DB, catalog: cfg.Catalog, now: cfg.Now, log: cfg.Logger,
		tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/cart")}
}

func notFound(id string) error {
	return errs.Coded(errs.NotFound, "cart_not_found", "cart %s does not exist", id).With("cart_id", id)
}

// Create makes an empty cart; memberID is "" for a guest.
func (s *Service) Create(ctx context.Context, memberID string) (Cart, error) {
	c := Cart{ID: "cart_" + strings.ReplaceAll(uuid.NewString(), "-", ""), MemberID: memberID, Items: []Item{}}
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := db.Micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO carts (id, member_id, created_at, updated_at) VALUES ($1, $2, $3, $3)`, c.ID, memberID, now); err != nil {
			return fmt.Errorf("cart: create: %w", err)
		}
		return nil
	})
	return c, err
}

// Get returns a cart with its items and total.
func (s *Service) Get(ctx context.Context, id string) (Cart, error) {
	return load(ctx, s.db.Read(), id, "")
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func load(ctx context.Context, q querier, id, forUpdate string) (Cart, error) {
	c := Cart{ID: id, Items: []Item{}}
	err := q.QueryRowContext(ctx, `SELECT member_id, checkout_id FROM carts WHERE id = $1`+forUpdate, id).Scan(&c.MemberID, &c.CheckoutID)
	if errors.Is(err, sql.ErrNoRows) {
		return Cart{}, notFound(id)
	}
	if err != nil {
		return Cart{}, fmt.Errorf("cart: load %s: %w", id, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT product_id, quantity, unit_price_amount, unit_price_currency FROM cart_items
		WHERE cart_id = $1 ORDER BY product_id`, id)
	if err != nil {
		return Cart{}, fmt.Errorf("cart: load items %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.ProductID, &it.Quantity, &it.UnitPrice.Amount, &it.UnitPrice.Currency); err != nil {
			return Cart{}, fmt.Errorf("cart: load items %s: %w", id, err)
		}
		c.Items = append(c.Items, it)
	}
	if err := rows.Err(); err != nil {
		return Cart{}, fmt.Errorf("cart: load items %s: %w", id, err)
	}
	c.Total, err = total(c.Items)
	return c, err
}

func total(items []Item) (money.Money, error) {
	if len(items) == 0 {
		return money.Money{Currency: "USD"}, nil
	}
	t := money.Money{Currency: items[0].UnitPrice.Currency}
	for _, it := range items {
		line, err := it.UnitPrice.Mul(it.Quantity)
		if err == nil {
			t, err = t.Add(line)
		}
		if err != nil {
			return money.Money{}, errs.Coded(errs.Unprocessable, "invalid_cart_total", "the cart total cannot be computed").Wrap(err)
		}
	}
	return t, nil
}

// mutate runs change on a cart that no checkout holds.
func (s *Service) mutate(ctx context.Context, id string, change func(ctx context.Context, tx *db.Tx, c Cart) error) (Cart, error) {
	var out Cart
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		c, err := load(ctx, tx, id, tx.ForUpdate())
		if err != nil {
			return err
		}
		if c.CheckoutID != "" {
			return errs.Coded(errs.Conflict, "cart_checked_out", "the cart is being or has been checked out").With("cart_id", id)
		}
		if err := change(ctx, tx, c); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE carts SET updated_at = $2 WHERE id = $1`, id, db.Micros(s.now())); err != nil {
			return fmt.Errorf("cart: touch %s: %w", id, err)
		}
		out, err = load(ctx, tx, id, "")
		return err
	})
	return out, err
}

func checkQuantity(q int64) error {
	if q <= 0 || q > MaxQuantity {
		return errs.Coded(errs.Invalid, "invalid_field", "quantity must be between 1 and %d", MaxQuantity).With("field", "quantity")
	}
	return nil
}

// AddItem adds quantity of a product at its current catalog price (adding a
// product already in the cart adds to its quantity and takes the current price).
func (s *Service) AddItem(ctx context.Context, cartID, productID string, quantity int64) (Cart, error) {
	if err := checkQuantity(quantity); err != nil {
		return Cart{}, err
	}
	prices, err := s.catalog.Prices(ctx, []string{productID})
	if err != nil {
		return Cart{}, err
	}
	price, ok := prices[productID]
	if !ok {
		return Cart{}, errs.Coded(errs.Unprocessable, "product_not_found", "product %s does not exist", productID).With("product_id", productID)
	}
	return s.mutate(ctx, cartID, func(ctx context.Context, tx *db.Tx, c Cart) error {
		var have int64
		for _, it := range c.Items {
			if it.ProductID == productID {
				have = it.Quantity
			} else if it.UnitPrice.Currency != price.Currency {
				return errs.Coded(errs.Unprocessable, "currency_mismatch", "the cart holds %s items; product %s is priced in %s", it.UnitPrice.Currency, productID, price.Currency)
			}
		}
		if have == 0 && len(c.Items) >= MaxLines {
			return errs.Coded(errs.Unprocessable, "cart_full", "a cart holds at most %d products", MaxLines)
		}
		if err := checkQuantity(have + quantity); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO cart_items (cart_id, product_id, quantity, unit_price_amount, unit_price_currency, added_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = excluded.quantity, unit_price_amount = excluded.unit_price_amount,
				unit_price_currency = excluded.unit_price_currency`,
			cartID, productID, have+quantity, price.Amount, price.Currency, db.Micros(s.now()))
		if err != nil {
			return fmt.Errorf("cart: add item: %w", err)
		}
		return nil
	})
}

// SetQuantity sets a line's quantity; zero removes it.
func (s *Service) SetQuantity(ctx context.Context, cartID, productID string, quantity int64) (Cart, error) {
	if quantity != 0 {
		if err := checkQuantity(quantity); err != nil {
			return Cart{}, err
		}
	}
	return s.mutate(ctx, cartID, func(ctx context.Context, tx *db.Tx, c Cart) error {
		q := `UPDATE cart_items SET quantity = $3 WHERE cart_id = $1 AND product_id = $2`
		args := []any{cartID, productID, quantity}
		if quantity == 0 {
			q, args = `DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2`, args[:2]
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("cart: set quantity: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.Coded(errs.NotFound, "cart_item_not_found", "product %s is not in the cart", productID).With("product_id", productID)
		}
		return nil
	})
}

// Validated is a cart checked against the catalog and held for one checkout.
type Validated struct {
	CartID   string
	MemberID string
	Items    []Item
	Total    money.Money
}

// Validate holds the cart for checkoutID (a cart feeds one checkout) and checks
// every captured price against the catalog. memberID is the caller's member id
// ("" for a guest): a member's cart may only be checked out by that member.
// A changed price fails with errs Conflict "price_changed" listing the new
// prices; the cart is updated to them and released, so a retry can succeed.
// reservationID is the id the checkout's stock reservation will have (the
// checkout reserves stock after validating); it only labels the cart.validate
// span (inventory.reservation_id), so a trace ties the two together.
func (s *Service) Validate(ctx context.Context, cartID, memberID, checkoutID, reservationID string) (Validated, error) {
	ctx, span := s.tracer.Start(ctx, "cart.validate", trace.WithAttributes(attribute.String("cart.id", cartID), attribute.String("user.id", userID(memberID))))
	if reservationID != "" {
		span.SetAttributes(attribute.String("inventory.reservation_id", reservationID))
	}
	defer span.End()
	v, err := s.validate(ctx, cartID, memberID, checkoutID)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			span.RecordError(err)
		}
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Validated{}, err
	}
	span.SetAttributes(attribute.Int("cart.item_count", len(v.Items)))
	return v, nil
}

func userID(memberID string) string {
	if memberID == "" {
		return "guest"
	}
	return memberID
}

func (s *Service) validate(ctx context.Context, cartID, memberID, checkoutID string) (Validated, error) {
	c, err := s.fetchContents(ctx, cartID, memberID, checkoutID)
	if err != nil {
		return Validated{}, err
	}
	changes, err := s.verifyPrices(ctx, c)
	if err != nil {
		_ = s.Release(context.WithoutCancel(ctx), cartID, checkoutID)
		return Validated{}, err
	}
	if len(changes) > 0 {
		if err := s.repriceAndRelease(ctx, cartID, checkoutID, changes); err != nil {
			return Validated{}, err
		}
		ids := make([]string, len(changes))
		for i, ch := range changes {
			ids[i] = ch.ProductID
		}
		return Validated{}, errs.Coded(errs.Conflict, "price_changed", "prices changed for %s; review the cart and check out again", strings.Join(ids, ", ")).
			With("prices", changes)
	}
	return Validated{CartID: c.ID, MemberID: c.MemberID, Items: c.Items, Total: c.Total}, nil
}

// fetchContents takes the cart for checkoutID with one conditional UPDATE and reads it.
func (s *Service) fetchContents(ctx context.Context, cartID, memberID, checkoutID string) (Cart, error) {
	ctx, span := s.tracer.Start(ctx, "cart.fetch_contents", trace.WithAttributes(attribute.String("cart.id", cartID)))
	defer span.End()
	var c Cart
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		c, err = load(ctx, tx, cartID, tx.ForUpdate())
		if err != nil {
			return err
		}
		if c.MemberID != "" && c.MemberID != memberID {
			return errs.Coded(errs.Forbidden, "cart_forbidden", "this cart belongs to another member").With("cart_id", cartID)
		}
		if len(c.Items) == 0 {
			return errs.Coded(errs.Unprocessable, "cart_empty", "the cart is empty").With("cart_id", cartID)
		}
		if c.CheckoutID != "" && c.CheckoutID != checkoutID {
			return errs.Coded(errs.Conflict, "cart_checked_out", "the cart is being or has been checked out").With("cart_id", cartID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE carts SET checkout_id = $2 WHERE id = $1`, cartID, checkoutID); err != nil {
			return fmt.Errorf("cart: hold %s: %w", cartID, err)
		}
		return nil
	})
	if err != nil {
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Cart{}, err
	}
	span.SetAttributes(attribute.Int("cart.item_count", len(c.Items)))
	return c, nil
}

func (s *Service) verifyPrices(ctx context.Context, c Cart) ([]PriceChange, error) {
	ctx, span := s.tracer.Start(ctx, "cart.verify_prices", trace.WithAttributes(attribute.Int("cart.item_count", len(c.Items))))
	defer span.End()
	ids := make([]string, len(c.Items))
	for i, it := range c.Items {
		ids[i] = it.ProductID
	}
	current, err := s.catalog.Prices(ctx, ids)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "catalog lookup failed")
		return nil, err
	}
	var changes []PriceChange
	var missing []string
	for _, it := range c.Items {
		now, ok := current[it.ProductID]
		if !ok {
			missing = append(missing, it.ProductID)
			continue
		}
		if now != it.UnitPrice {
			span.AddEvent("price_mismatch", trace.WithAttributes(
				attribute.String("product.id", it.ProductID),
				attribute.Int64("price.expected", it.UnitPrice.Amount),
				attribute.Int64("price.actual", now.Amount),
				attribute.String("price.currency", now.Currency)))
			changes = append(changes, PriceChange{ProductID: it.ProductID, OldPrice: it.UnitPrice, NewPrice: now})
		}
	}
	span.SetAttributes(attribute.Int("cart.stale_prices", len(changes)))
	if len(missing) > 0 {
		sort.Strings(missing)
		span.SetStatus(codes.Error, "product_unavailable")
		return nil, errs.Coded(errs.Conflict, "product_unavailable", "no longer sold: %s; remove them from the cart", strings.Join(missing, ", ")).With("products", missing)
	}
	if len(changes) > 0 {
		span.SetStatus(codes.Error, "price_changed")
	}
	return changes, nil
}

func (s *Service) repriceAndRelease(ctx context.Context, cartID, checkoutID string, changes []PriceChange) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		for _, ch := range changes {
			if _, err := tx.ExecContext(ctx, `UPDATE cart_items SET unit_price_amount = $3, unit_price_currency = $4 WHERE cart_id = $1 AND product_id = $2`,
				cartID, ch.ProductID, ch.NewPrice.Amount, ch.NewPrice.Currency); err != nil {
				return fmt.Errorf("cart: reprice: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE carts SET checkout_id = '', updated_at = $3 WHERE id = $1 AND checkout_id = $2`,
			cartID, checkoutID, db.Micros(s.now())); err != nil {
			return fmt.Errorf("cart: release: %w", err)
		}
		return nil
	})
}

// Release lets go of a cart held by checkoutID (the checkout failed), so it can
// be changed or checked out again. Idempotent.
func (s *Service) Release(ctx context.Context, cartID, checkoutID string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE carts SET checkout_id = '', updated_at = $3 WHERE id = $1 AND checkout_id = $2`,
			cartID, checkoutID, db.Micros(s.now())); err != nil {
			return fmt.Errorf("cart: release %s: %w", cartID, err)
		}
		return nil
	})
}

// PurgeAbandoned deletes up to limit carts (with their items) last changed
// before cutoff and reports how many went: one batch of the retention job.
// A cart an in-progress checkout names is kept whatever its age (the saga
// still reads or releases it). The conditions are repeated on the deleted
// rows themselves, so on PostgreSQL a cart changed or taken by a checkout
// while the batch waits for its row lock is rechecked and kept; two replicas
// deleting at once delete each cart once.
func (s *Service) PurgeAbandoned(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM carts WHERE updated_at < $1 AND `+notInCheckout+` AND id IN (
			SELECT id FROM carts WHERE updated_at < $1 AND `+notInCheckout+` ORDER BY updated_at LIMIT $2) RETURNING id`,
			db.Micros(cutoff), limit)
		if err != nil {
			return fmt.Errorf("cart: purge: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("cart: purge: %w", err)
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("cart: purge: %w", err)
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		ph, args := db.InList(1, ids)
		if _, err := tx.ExecContext(ctx, `DELETE FROM cart_items WHERE cart_id IN (`+ph+`)`, args...); err != nil {
			return fmt.Errorf("cart: purge items: %w", err)
		}
		return nil
	})
	return n, err
}

// notInCheckout holds for a cart no in-progress checkout names. Carts and
// checkouts share one database in every deployment (split mode included), and
// migration 00045's partial index makes this one probe per candidate.
const notInCheckout = `NOT EXISTS (SELECT 1 FROM checkouts c WHERE c.cart_id = carts.id AND c.state = 'in_progress')`
