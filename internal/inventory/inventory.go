// Package inventory keeps available stock per product and reservations: a
// checkout's items are reserved all together or not at all, held until the
// order commits them or a failure (or the reaper, on expiry) releases them.
package inventory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/bounds"
	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

// CodeReservationNotFound is the error code when no reservation exists
// under a reference (ReservationByReference).
const CodeReservationNotFound = "reservation_not_found"

// DefaultReservationTTL is how long a reservation holds stock unless configured.
const DefaultReservationTTL = 15 * time.Minute

// Reservation states.
const (
	StateHeld      = "held"
	StateCommitted = "committed"
	StateReleased  = "released"
)

// Item is a quantity of one product.
type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// Reservation holds stock for one checkout (its reference).
type Reservation struct {
	ID        string    `json:"id"`
	Reference string    `json:"reference"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
	Items     []Item    `json:"items"`
}

// Shortage names a product that could not be reserved.
type Shortage struct {
	ProductID string `json:"product_id"`
	Requested int64  `json:"requested"`
	Available int64  `json:"available"`
}

// Config holds the Service's dependencies.
type Config struct {
	DB             *db.DB
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
	// ReservationTTL is how long stock stays reserved; default 15 minutes.
	ReservationTTL time.Duration
	// Faults holds the inventory's fault point; nil: a store of its own.
	Faults *faults.Store
}

// Service manages stock and reservations.
type Service struct {
	db     *db.DB
	now    func() time.Time
	tracer trace.Tracer
	log    *slog.Logger
	ttl    time.Duration
	faults *faults.Store
}

// New returns an inventory Service.
func New(cfg Config) *Service {
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider})
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = DefaultReservationTTL
	}
	return &Service{db: cfg.DB, now: cfg.Now, tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/inventory"),
		log: cfg.Logger, ttl: cfg.ReservationTTL, faults: newFaults(cfg)}
}

// SetAvailable sets a product's available stock (admin): 0 to
// bounds.MaxStock, else errs Invalid "invalid_field" with the bound.
func (s *Service) SetAvailable(ctx context.Context, productID string, available int64) error {
	if err := CheckStock("available", available); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM products WHERE id = $1`, productID).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.Coded(errs.NotFound, "product_not_found", "product %s does not exist", productID).With("product_id", productID)
		}
		if err != nil {
			return fmt.Errorf("inventory: set %s: %w", productID, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO inventory (product_id, available, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, updated_at = excluded.updated_at`,
			productID, available, db.Micros(s.now()))
		if err != nil {
			return fmt.Errorf("inventory: set %s: %w", productID, err)
		}
		return nil
	})
}

// CheckStock refuses a stock figure outside 0…bounds.MaxStock with errs
// Invalid "invalid_field" naming field and the bound (problem members field,
// minimum, maximum).
func CheckStock(field string, n int64) error {
	if n < 0 || n > bounds.MaxStock {
		return errs.Coded(errs.Invalid, "invalid_field", "%s must be between 0 and %d", field, bounds.MaxStock).
			With("field", field).With("minimum", 0).With("maximum", bounds.MaxStock)
	}
	return nil
}

// availableSQL reads inventory.available within its bounds, so a row damaged
// before the bounds existed cannot fail the read (verify reports it).
var availableSQL = bounds.ClampSQL("available", 0, bounds.MaxStock)

// Available returns a product's available (unreserved) stock.
func (s *Service) Available(ctx context.Context, productID string) (int64, error) {
	var n int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT `+availableSQL+` FROM inventory WHERE product_id = $1`, productID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errs.Coded(errs.NotFound, "product_not_found", "product %s has no stock record", productID).With("product_id", productID)
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: available %s: %w", productID, err)
	}
	return n, nil
}

// Reserve takes stock for every item or for none, under reference (the checkout
// id). It is idempotent on reference: a second call returns the first
// reservation, whatever its state. Items are taken in product-id order, each by
// one conditional UPDATE, so concurrent reservations never oversell or deadlock.
// Not enough stock: errs Conflict "insufficient_stock" with the short products.
func (s *Service) Reserve(ctx context.Context, reference string, items []Item) (Reservation, error) {
	ctx, span := s.tracer.Start(ctx, "inventory.reserve_batch", trace.WithAttributes(attribute.Int("inventory.item_count", len(items))))
	defer span.End()
	res, err := s.delayedReserve(ctx, span, reference, items)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			span.RecordError(err)
		}
		span.SetStatus(codes.Error, errs.CodeOf(err))
		return Reservation{}, err
	}
	span.SetAttributes(attribute.String("inventory.reservation_id", res.ID), attribute.Int("inventory.reservations_created", len(res.Items)))
	return res, nil
}

func (s *Service) delayedReserve(ctx context.Context, span trace.Span, reference string, items []Item) (Reservation, error) {
	if err := s.injectDelay(ctx, span); err != nil {
		return Reservation{}, err
	}
	return s.reserve(ctx, reference, items)
}

func (s *Service) reserve(ctx context.Context, reference string, items []Item) (Reservation, error) {
	sorted, err := mergeItems(items)
	if err != nil {
		return Reservation{}, err
	}
	var out Reservation
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		existing, err := reservationByReference(ctx, tx, reference)
		if err == nil {
			out = existing
			return nil
		}
		if !errs.Is(err, CodeReservationNotFound) {
			return err
		}
		now := s.now()
		id := ReservationID(reference)
		if err := s.takeStock(ctx, tx, id, sorted, now); err != nil {
			return err
		}
		out = Reservation{ID: id, Reference: reference, State: StateHeld, ExpiresAt: now.Add(s.ttl).UTC().Truncate(time.Microsecond), Items: sorted}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reservations (id, reference, state, expires_at, created_at, updated_at)
			VALUES ($1, $2, 'held', $3, $4, $4)`, out.ID, reference, db.Micros(out.ExpiresAt), db.Micros(now)); err != nil {
			return fmt.Errorf("inventory: insert reservation: %w", err)
		}
		for _, it := range sorted {
			if _, err := tx.ExecContext(ctx, `INSERT INTO reservation_items (reservation_id, product_id, quantity) VALUES ($1, $2, $3)`,
				out.ID, it.ProductID, it.Quantity); err != nil {
				return fmt.Errorf("inventory: insert reservation item: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// ReservationID is the id of the reservation made under reference. It is
// derived from the reference (which names at most one reservation), so it is
// known before any stock is taken: each inventory.reserve_item span carries
// it, and the checkout puts it on cart.validate, which runs before the
// reservation exists.
func ReservationID(reference string) string {
	sum := sha256.Sum256([]byte("reservation\x00" + reference))
	return "res_" + hex.EncodeToString(sum[:16])
}

// mergeItems adds up the quantities per product and sorts the products by id,
// the order in which stock is taken so that reservations never deadlock. A
// product's units are at most bounds.MaxStock, so the sum cannot overflow.
func mergeItems(items []Item) ([]Item, error) {
	merged := map[string]int64{}
	for _, it := range items {
		if it.ProductID == "" || it.Quantity <= 0 {
			return nil, errs.Coded(errs.Invalid, "invalid_items", "every item needs a product id and a positive quantity")
		}
		if it.Quantity > bounds.MaxStock-merged[it.ProductID] {
			return nil, errs.Coded(errs.Invalid, "invalid_items", "at most %d units of a product", bounds.MaxStock).
				With("product_id", it.ProductID).With("maximum", bounds.MaxStock)
		}
		merged[it.ProductID] += it.Quantity
	}
	if len(merged) == 0 {
		return nil, errs.Coded(errs.Invalid, "invalid_items", "nothing to reserve")
	}
	sorted := make([]Item, 0, len(merged))
	for id, q := range merged {
		sorted = append(sorted, Item{ProductID: id, Quantity: q})
	}
	slices.SortFunc(sorted, func(a, b Item) int { return strings.Compare(a.ProductID, b.ProductID) })
	return sorted, nil
}

// takeStock takes every item's stock for reservation id, or returns errs
// Conflict "insufficient_stock" naming every product short.
func (s *Service) takeStock(ctx context.Context, tx *db.Tx, id string, sorted []Item, now time.Time) error {
	var short []Shortage
	for _, it := range sorted {
		sh, isShort, err := s.reserveItem(ctx, tx, id, it, now)
		if err != nil {
			return err
		}
		if isShort {
			short = append(short, sh)
		}
	}
	if len(short) == 0 {
		return nil
	}
	ids := make([]string, len(short))
	for i, sh := range short {
		ids[i] = sh.ProductID
	}
	return errs.Coded(errs.Conflict, "insufficient_stock", "not enough stock for %s", strings.Join(ids, ", ")).With("products", short)
}

// reserveItem takes one item's stock with a single conditional statement and
// reports, with what is missing, whether there was not enough.
func (s *Service) reserveItem(ctx context.Context, tx *db.Tx, reservationID string, it Item, now time.Time) (sh Shortage, short bool, err error) {
	ctx, span := s.tracer.Start(ctx, "inventory.reserve_item", trace.WithAttributes(attribute.String("reservation.id", reservationID),
		attribute.String("product.id", it.ProductID), attribute.Int64("quantity.requested", it.Quantity)))
	defer span.End()
	res, err := tx.ExecContext(ctx, `UPDATE inventory SET available = available - $1, updated_at = $3 WHERE product_id = $2 AND available >= $1`,
		it.Quantity, it.ProductID, db.Micros(now))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "reserve failed")
		return Shortage{}, false, fmt.Errorf("inventory: reserve %s: %w", it.ProductID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Shortage{}, false, nil
	}
	var available int64
	err = tx.QueryRowContext(ctx, `SELECT `+availableSQL+` FROM inventory WHERE product_id = $1`, it.ProductID).Scan(&available)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Shortage{}, false, fmt.Errorf("inventory: read stock %s: %w", it.ProductID, err)
	}
	span.AddEvent("insufficient_stock", trace.WithAttributes(attribute.Int64("available", available), attribute.Int64("requested", it.Quantity)))
	span.SetStatus(codes.Error, "insufficient_stock")
	return Shortage{ProductID: it.ProductID, Requested: it.Quantity, Available: available}, true, nil
}

// Commit marks a held, unexpired reservation as committed (the order took the
// stock for good). Committing again is a no-op. An expired or released
// reservation: errs Conflict "reservation_expired".
func (s *Service) Commit(ctx context.Context, reservationID string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := db.Micros(s.now())
		res, err := tx.ExecContext(ctx, `UPDATE reservations SET state = 'committed', updated_at = $2
			WHERE id = $1 AND (state = 'committed' OR (state = 'held' AND expires_at > $2))`, reservationID, now)
		if err != nil {
			return fmt.Errorf("inventory: commit %s: %w", reservationID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.Coded(errs.Conflict, "reservation_expired", "the stock reservation expired or was released").With("reservation_id", reservationID)
		}
		return nil
	})
}

// Release returns a held reservation's stock. Releasing a released or unknown
// reservation is a no-op; a committed one is left alone (its order owns it).
// It reports whether this call released it.
func (s *Service) Release(ctx context.Context, reservationID string) (bool, error) {
	var released bool
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		var err error
		released, err = releaseTx(ctx, tx, reservationID, db.Micros(s.now()), -1)
		return err
	})
	return released, err
}

// releaseTx releases one reservation when it is held (and, if expiredBefore >= 0,
// expired before that time). The conditional UPDATE makes exactly one caller win,
// across replicas, so stock is returned once.
func releaseTx(ctx context.Context, tx *db.Tx, id string, now, expiredBefore int64) (bool, error) {
	q := `UPDATE reservations SET state = 'released', updated_at = $2 WHERE id = $1 AND state = 'held'`
	args := []any{id, now}
	if expiredBefore >= 0 {
		q += ` AND expires_at <= $3`
		args = append(args, expiredBefore)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("inventory: release %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	items, err := itemsOf(ctx, tx, id)
	if err != nil {
		return false, err
	}
	for _, it := range items { // sorted by product id: the same lock order as Reserve
		// Stock set near the bound while units were reserved saturates at the
		// bound rather than overflowing or failing the release (which would
		// leave the reservation held for ever).
		if _, err := tx.ExecContext(ctx, `UPDATE inventory SET available = CASE WHEN available > CAST($4 AS BIGINT) - CAST($1 AS BIGINT) THEN $4 ELSE available + $1 END,
			updated_at = $3 WHERE product_id = $2`, it.Quantity, it.ProductID, now, bounds.MaxStock); err != nil {
			return false, fmt.Errorf("inventory: restock %s: %w", it.ProductID, err)
		}
	}
	return true, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func itemsOf(ctx context.Context, q querier, id string) ([]Item, error) {
	rows, err := q.QueryContext(ctx, `SELECT product_id, quantity FROM reservation_items WHERE reservation_id = $1 ORDER BY product_id`, id)
	if err != nil {
		return nil, fmt.Errorf("inventory: reservation items: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.ProductID, &it.Quantity); err != nil {
			return nil, fmt.Errorf("inventory: reservation items: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

func reservationByReference(ctx context.Context, q querier, reference string) (Reservation, error) {
	var r Reservation
	var exp int64
	err := q.QueryRowContext(ctx, `SELECT id, reference, state, expires_at FROM reservations WHERE reference = $1`, reference).
		Scan(&r.ID, &r.Reference, &r.State, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, errs.Coded(errs.NotFound, CodeReservationNotFound, "no reservation for %s", reference)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("inventory: reservation %s: %w", reference, err)
	}
	r.ExpiresAt = db.FromMicros(exp)
	if r.Items, err = itemsOf(ctx, q, r.ID); err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// ReservationByReference returns the reservation made under reference, or errs
// NotFound "reservation_not_found". Recovery uses it when a crash came between
// reserving and recording the reservation id.
func (s *Service) ReservationByReference(ctx context.Context, reference string) (Reservation, error) {
	return reservationByReference(ctx, s.db.Read(), reference)
}

// ReapExpired releases every held reservation whose expiry has passed and
// reports how many it released. Safe to run on several replicas at once.
func (s *Service) ReapExpired(ctx context.Context) (int, error) {
	now := db.Micros(s.now())
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id FROM reservations WHERE state = 'held' AND expires_at <= $1 ORDER BY expires_at LIMIT 500`, now)
	if err != nil {
		return 0, fmt.Errorf("inventory: reap: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("inventory: reap: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("inventory: reap: %w", err)
	}
	n := 0
	for _, id := range ids {
		var released bool
		err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			var err error
			released, err = releaseTx(ctx, tx, id, now, now)
			return err
		})
		if err != nil {
			return n, err
		}
		if released {
			n++
		}
	}
	if n > 0 {
		s.log.InfoContext(ctx, "released expired reservations", "count", n)
	}
	return n, nil
}

// ReaperPass runs ReapExpired once: one pass of the reservation reaper job.
// Replicas may all run it: each release is a transaction that only changes
// a reservation still held.
func (s *Service) ReaperPass(ctx context.Context) error {
	_, err := s.ReapExpired(ctx)
	return err
}

var errInvalidAvailable = errs.Coded(errs.Invalid, "invalid_field", "available is required").With("field", "available")
