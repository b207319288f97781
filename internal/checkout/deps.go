// Package checkout is the checkout saga: validate the cart, reserve stock,
// hold points, charge, create the order (with its confirmation), capture the
// points and earn new ones. The checkouts row is written before the first
// external effect (with its lease), again before the points hold and the
// charge (with the items and amounts an order needs), and with the outcome;
// every effect in between is idempotent and found again by reference, so
// Recover can resume or compensate a checkout that a crash interrupted. The
// package declares the small interfaces it needs from the services it
// orchestrates; in one process the real services satisfy them, in split mode
// HTTP clients do. In one process (Config.LocalTx) the steps before the charge
// share one transaction and those after it another, so a checkout makes three
// commits and a crash inside either transaction leaves nothing of it.
package checkout

import (
	"context"

	"github.com/godwit-dev/godwit/internal/cart"
	"github.com/godwit-dev/godwit/internal/catalog"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
)

// Carts is what checkout needs from the cart service.
type Carts interface {
	// Validate: reservationID only labels the cart.validate span.
	Validate(ctx context.Context, cartID, memberID, checkoutID, reservationID string) (cart.Validated, error)
	Release(ctx context.Context, cartID, checkoutID string) error
}

// Products gives product names and SKUs for order lines and confirmations.
type Products interface {
	Products(ctx context.Context, ids []string) (map[string]catalog.Product, error)
}

// Inventory is what checkout needs from the inventory service.
type Inventory interface {
	Reserve(ctx context.Context, reference string, items []inventory.Item) (inventory.Reservation, error)
	Commit(ctx context.Context, reservationID string) error
	Release(ctx context.Context, reservationID string) (bool, error)
	ReservationByReference(ctx context.Context, reference string) (inventory.Reservation, error)
}

// Payments is what checkout needs from the payment service.
type Payments interface {
	Charge(ctx context.Context, req payment.ChargeRequest) (payment.Charge, error)
	Lookup(ctx context.Context, idempotencyKey string) (payment.Charge, error)
	Void(ctx context.Context, chargeID string) (payment.Charge, error)
	Refund(ctx context.Context, chargeID string, amount money.Money, key string) (payment.Refund, error)
	// Retrieve and Cancel settle a checkout that waited for authentication.
	Retrieve(ctx context.Context, chargeID string) (payment.Charge, error)
	Cancel(ctx context.Context, chargeID string) error
}

// Orders is what checkout needs from the order service.
type Orders interface {
	Create(ctx context.Context, no order.NewOrder) (order.Order, error)
	ByCheckout(ctx context.Context, checkoutID string) (order.Order, error)
	Get(ctx context.Context, id string) (order.Order, error)
	Confirm(ctx context.Context, id string, pointsEarned int64) (order.Order, error)
	StartRefund(ctx context.Context, orderID, refundID string, amount *money.Money) (order.RefundPlan, error)
	FinishRefund(ctx context.Context, orderID, refundID string) (order.Order, error)
}

// orderFaults is implemented by an order service in this process with
// injectable delays around the order's creation (order.FaultPointCreate
// before it, order.FaultPointCreated after it): the saga waits them out
// outside its transactions, so a delay never holds a write transaction. An
// order service reached over HTTP applies them itself.
type orderFaults interface {
	WaitFault(ctx context.Context, point string) error
}

// PointsEarned is the result of EarnPurchase.
type PointsEarned struct {
	Points        int64
	TransactionID string
}

// Loyalty is what checkout needs from the loyalty service.
type Loyalty interface {
	// HoldPoints: idempotent on reference; not enough points → errs Unprocessable
	// code "insufficient_points" (details points_short, current_balance).
	HoldPoints(ctx context.Context, memberID string, points int64, reference string) (holdID string, err error)
	CapturePointsHold(ctx context.Context, holdID string) error                                           // idempotent
	VoidPointsHold(ctx context.Context, holdID string) error                                              // idempotent
	EarnPurchase(ctx context.Context, memberID, orderID string, amount money.Money) (PointsEarned, error) // idempotent per order
	RefundPoints(ctx context.Context, memberID string, points int64, reference string) error              // idempotent on reference
}

// PurchaseReverser is implemented by a loyalty service that can take back the
// points a purchase earned; a full refund uses it when available.
type PurchaseReverser interface {
	ReversePurchase(ctx context.Context, memberID, orderID string) error
}
