package checkout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// The saga's steps. They are the values of the checkout.step and
// checkout.failure_step span attributes and of failure_step in problems. The
// checkouts row's step column names the last step whose start was recorded:
// initiated, then holding_points (recorded with everything a charge needs to
// become an order), then complete. Every commit costs a WAL flush, so the steps
// in between are not recorded: their effects are found again by reference.
const (
	StepInitiated          = "initiated"
	StepValidatingCart     = "validating_cart"
	StepReservingInventory = "reserving_inventory"
	StepHoldingPoints      = "holding_points"
	StepProcessingPayment  = "processing_payment"
	StepCreatingOrder      = "creating_order"
	StepFinishing          = "finishing" // capture points, earn points, confirm the order
	StepComplete           = "complete"
)

// Steps lists the steps in order; FailAfter is called with each of them
// (except complete) right after its external effects, before the saga goes on.
var Steps = []string{StepInitiated, StepValidatingCart, StepReservingInventory, StepHoldingPoints,
	StepProcessingPayment, StepCreatingOrder, StepFinishing}

var stepRank = map[string]int{}

func init() {
	for i, s := range append(Steps, StepComplete) {
		stepRank[s] = i
	}
}

// Config holds the Service's dependencies.
type Config struct {
	DB        *db.DB
	Carts     Carts
	Products  Products // optional: names and SKUs on order lines
	Inventory Inventory
	Payments  Payments
	Orders    Orders
	// Loyalty is optional: without it, points can be neither redeemed nor earned.
	Loyalty Loyalty
	// Program values points at checkout; nil means program.Default().
	Program        *program.Program
	Now            func() time.Time
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Logger         *slog.Logger
	// Lease is how long a running checkout is protected from the recovery
	// pass and from a retry past its last renewal: a heartbeat renews it every
	// third of the lease while the saga runs (keepLease), so only a checkout
	// whose process died loses it. Default DefaultLease.
	Lease time.Duration
	// FailAfter is a test-only fault point: called after each step's external
	// effect and before the saga goes on, a non-nil error stops the saga there
	// as if the process had died (nothing is compensated), for Recover to clean up.
	// With LocalTx it is also called after each of the saga's own commits
	// (AfterCommitBeforePayment, AfterCommitComplete), and a step inside a
	// transaction stopped so dies before that transaction commits.
	FailAfter func(step string) error
	// LocalTx says that Carts, Inventory, Orders and Loyalty are services of
	// this process writing to DB through DB.InTx. The saga then runs the steps
	// before the charge in one transaction and those after it in another,
	// which the services' own transactions join (db.Join): three commits a
	// checkout with the charge's, instead of one per effect. Set it only when
	// all of them are local: a service reached over HTTP (split mode) or
	// keeping its state elsewhere could not roll back with the saga.
	LocalTx bool
	// Events records checkout.failed with the failed checkout's record;
	// nil: no events.
	Events EventRecorder
	// AuthenticationWindow is how long a checkout whose charge asks for
	// customer authentication (3-D Secure) waits, its stock reserved and
	// its points held, before the recovery pass cancels it. It must be
	// shorter than the reservation TTL and the points hold TTL. Default
	// DefaultAuthenticationWindow.
	AuthenticationWindow time.Duration
	// CaptureManual authorises the card at checkout and captures it at
	// fulfilment (Fulfil, POST /v1/orders/{id}/fulfil), all or less: the
	// checkout ends with the order authorized, the stock committed and the
	// points paid spent, and points are earned only on what fulfilment
	// captures. It needs the order, inventory and payment services in this
	// process (app refuses it in split mode).
	CaptureManual bool
}

// DefaultAuthenticationWindow is Config.AuthenticationWindow when zero.
const DefaultAuthenticationWindow = 10 * time.Minute

// EventRecorder writes business events inside the caller's transaction
// (events.Recorder).
type EventRecorder interface {
	Record(ctx context.Context, tx *db.Tx, evs ...events.Event) error
}

// Service runs checkouts.
type Service struct {
	cfg          Config
	tracer       trace.Tracer
	log          *slog.Logger
	completed    metric.Int64Counter
	duration     metric.Float64Histogram
	stepDuration metric.Float64Histogram
}

// New returns a checkout Service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Carts == nil || cfg.Inventory == nil || cfg.Payments == nil || cfg.Orders == nil {
		return nil, errors.New("checkout: DB, Carts, Inventory, Payments and Orders are required")
	}
	if cfg.Program == nil {
		cfg.Program = program.Default()
	}
	defaults.Fill(defaults.Fields{Now: &cfg.Now, Logger: &cfg.Logger, Tracer: &cfg.TracerProvider, Meter: &cfg.MeterProvider})
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.AuthenticationWindow <= 0 {
		cfg.AuthenticationWindow = DefaultAuthenticationWindow
	}
	meter := cfg.MeterProvider.Meter("github.com/godwit-dev/godwit/internal/checkout")
	s := &Service{cfg: cfg, log: cfg.Logger, tracer: cfg.TracerProvider.Tracer("github.com/godwit-dev/godwit/internal/checkout")}
	var err error
	if s.completed, err = meter.Int64Counter("checkout.completed", metric.WithDescription("Checkout attempts by outcome")); err != nil {
		return nil, err
	}
	if s.duration, err = meter.Float64Histogram("checkout.duration_ms", metric.WithUnit("ms"), metric.WithDescription("Total checkout duration")); err != nil {
		return nil, err
	}
	if s.stepDuration, err = meter.Float64Histogram("checkout.step_duration_ms", metric.WithUnit("ms"), metric.WithDescription("Duration of each checkout step")); err != nil {
		return nil, err
	}
	return s, nil
}

// ID derives a checkout's id from the Idempotency-Key's owner (the caller's
// actor, or for a guest the key's cart scope: httpx.IdempotencyOwner) and the
// key, so a duplicate request maps onto the same saga and two guests' equal
// keys onto two.
func ID(owner, idempotencyKey string) string {
	sum := sha256.Sum256([]byte(owner + "\x00" + idempotencyKey))
	return "co_" + hex.EncodeToString(sum[:16])
}

// orderID is the id of the order a checkout creates. The checkout allocates
// it before the charge, so payment.process can name the order it pays for
// (order.id); it is derived from the checkout id, so a checkout that Recover
// resumes creates the order under the same id without recording it first.
// An order that already exists for the checkout (Create is idempotent on the
// checkout id) keeps the id it has.
func orderID(checkoutID string) string {
	sum := sha256.Sum256([]byte("order\x00" + checkoutID))
	return "ord_" + hex.EncodeToString(sum[:12])
}

// Request is one checkout.
type Request struct {
	CheckoutID     string // from ID
	CartID         string
	MemberID       string // "" for a guest
	Email          string // where the confirmation goes; required for guests
	PaymentToken   string // never stored or logged
	PointsToRedeem int64
}

// Result is a successful checkout.
type Result struct {
	CheckoutID     string      `json:"checkout_id"`
	OrderID        string      `json:"order_id"`
	Status         string      `json:"status"`
	Total          money.Money `json:"total"`
	Charged        money.Money `json:"charged"`
	PointsEarned   int64       `json:"points_earned"`
	PointsRedeemed int64       `json:"points_redeemed"`
	TraceID        string      `json:"trace_id"`
	// Action is set (and Status is requires_action) while the checkout waits
	// for the customer to authenticate: POST /v1/checkout answers 202.
	Action *Action `json:"-"`
}

// errInterrupted marks a saga stopped by the fault hook, by a failure to
// record progress or by its lease running out: its effects are left for Recover.
var errInterrupted = errors.New("checkout interrupted")

// errLeaseExpired stops a saga that outlived its lease before its next effect.
var errLeaseExpired = errors.New("checkout lease expired")

func interrupted(step string, cause error) error {
	return errs.Coded(errs.Unavailable, "checkout_interrupted",
		"the checkout was interrupted; it will be completed or undone automatically; retry with the same Idempotency-Key to learn the outcome").
		With("failure_step", step).Wrap(fmt.Errorf("%w at %s: %w", errInterrupted, step, cause))
}

func userID(memberID string) string {
	if memberID == "" {
		return "guest"
	}
	return memberID
}

// leaseHeld reports, before an external effect, whether the lease last
// written for rec still runs. Between the saves nothing else would notice that
// a recovery pass may have claimed the checkout, so without this the saga could
// charge or order after Recover has undone it.
func (s *Service) leaseHeld(rec *record, step string) error {
	switch {
	case rec.lease == nil:
		return interrupted(step, errLeaseExpired)
	case rec.lease.lost.Load():
		return interrupted(step, errLeaseLost)
	case db.Micros(s.cfg.Now()) >= rec.lease.until.Load():
		return interrupted(step, errLeaseExpired)
	}
	return nil
}

func (s *Service) failPoint(step string) error { return s.failPointAt(step, step) }

// Checkout runs the saga for req. A failure is an *errs.Error whose details
// carry failure_step; a repeated request for the same checkout id returns the
// first outcome.
func (s *Service) Checkout(ctx context.Context, req Request) (Result, error) {
	ctx, span := s.tracer.Start(ctx, "checkout.process", trace.WithAttributes(
		attribute.String("cart.id", req.CartID),
		attribute.String("user.id", userID(req.MemberID)),
		attribute.String("checkout.id", req.CheckoutID),
		attribute.String("checkout.step", StepInitiated),
	))
	defer span.End()
	start := time.Now()

	res, step, err := s.run(ctx, span, req)
	status := "completed"
	if err != nil {
		status = "failed"
		if errors.Is(err, errInterrupted) {
			status = "interrupted"
		}
		span.SetAttributes(attribute.String("checkout.failure_step", step))
		span.RecordError(err)
		span.SetStatus(codes.Error, errs.CodeOf(err))
	} else if res.Action != nil {
		status = stateRequiresAction
		span.SetAttributes(attribute.String("checkout.step", StepProcessingPayment), attribute.String("checkout.state", stateRequiresAction))
	} else {
		span.SetAttributes(attribute.String("checkout.step", StepComplete), attribute.String("order.id", res.OrderID))
	}
	attrs := metricStatus(status)
	s.completed.Add(ctx, 1, attrs)
	s.duration.Record(ctx, float64(time.Since(start).Microseconds())/1000, attrs)
	return res, err
}

// timed runs one step, setting checkout.step and recording its duration.
func (s *Service) timed(ctx context.Context, span trace.Span, step string, fn func() error) error {
	span.SetAttributes(attribute.String("checkout.step", step))
	t := time.Now()
	err := fn()
	st := "ok"
	if err != nil {
		st = "error"
	}
	s.stepDuration.Record(ctx, float64(time.Since(t).Microseconds())/1000,
		metric.WithAttributes(attribute.String("checkout.step", step), attribute.String("step.status", st)))
	return err
}

func withStep(err error, step string) error {
	if e, ok := errs.As(err); ok {
		if _, has := e.Details["failure_step"]; has {
			return err
		}
		return e.With("failure_step", step)
	}
	return errs.New(errs.Internal, "checkout failed").With("failure_step", step).Wrap(err)
}

func (s *Service) run(ctx context.Context, span trace.Span, req Request) (Result, string, error) {
	traceID := ""
	if sc := span.SpanContext(); sc.IsValid() {
		traceID = sc.TraceID().String()
	}
	// A retry of a checkout that a crash interrupted takes it over and
	// resumes it; an ended one is replayed.
	if rec, err := s.takeOver(ctx, req); err != nil {
		return Result{}, StepInitiated, withStep(err, StepInitiated)
	} else if rec != nil {
		if rec.State == stateRequiresAction {
			return s.settleByID(ctx, span, rec.ID)
		}
		if rec.State != stateInProgress {
			return s.replay(span, rec)
		}
		defer s.keepLease(rec)()
		return s.resumeTaken(ctx, span, req, rec)
	}
	if s.cfg.LocalTx {
		return s.runLocal(ctx, span, req, traceID)
	}
	rec, err := s.begin(ctx, req, traceID)
	if err != nil {
		return Result{}, StepInitiated, withStep(err, StepInitiated)
	}
	switch rec.State {
	case stateCompleted, stateFailed:
		return s.replay(span, rec)
	case stateRequiresAction:
		return s.settleByID(ctx, span, rec.ID)
	}
	defer s.keepLease(rec)()
	if err := s.failPoint(StepInitiated); err != nil {
		return Result{}, StepInitiated, err
	}
	if step, err := s.beforePayment(ctx, span, req, rec); err != nil {
		return s.fail(ctx, rec, step, err)
	}
	if res, step, err := s.charge(ctx, span, req, rec); err != nil {
		return res, step, err
	}
	if rec.pending != nil {
		return s.await(ctx, span, rec)
	}
	return s.orderAndFinish(ctx, span, rec)
}

// orderAndFinish runs creating_order and finishing when each service
// commits on its own. creating_order is not recorded; Recover finds the order
// by checkout id.
func (s *Service) orderAndFinish(ctx context.Context, span trace.Span, rec *record) (Result, string, error) {
	err := s.timed(ctx, span, StepCreatingOrder, func() error {
		if err := s.orderFault(ctx, order.FaultPointCreate); err != nil {
			return err
		}
		if err := s.leaseHeld(rec, StepCreatingOrder); err != nil {
			return err
		}
		o, err := s.createOrder(ctx, rec, s.orderLines(ctx, rec))
		if err != nil {
			return err
		}
		orderCreated(span, rec, o)
		if err := s.orderFault(ctx, order.FaultPointCreated); err != nil {
			return err
		}
		return s.failPoint(StepCreatingOrder)
	})
	if err != nil {
		return s.fail(ctx, rec, StepCreatingOrder, err)
	}
	return s.finishDeferrable(ctx, span, rec)
}

// orderFault waits out the delay of an order fault point when the order
// service is in this process (see orderFaults). The request ending meanwhile
// interrupts the saga, leaving it to the retry or the recovery pass.
func (s *Service) orderFault(ctx context.Context, point string) error {
	of, ok := s.cfg.Orders.(orderFaults)
	if !ok {
		return nil
	}
	if err := of.WaitFault(ctx, point); err != nil {
		return interrupted(StepCreatingOrder, err)
	}
	return nil
}

// replay answers a checkout that has already ended with its recorded outcome.
func (s *Service) replay(span trace.Span, rec *record) (Result, string, error) {
	span.SetAttributes(attribute.Bool("checkout.replayed", true))
	if rec.State == stateCompleted {
		return s.result(rec), StepComplete, nil
	}
	return Result{}, rec.FailureStep, rec.failure()
}

// beforePayment runs the steps before the charge: validating_cart,
// reserving_inventory and holding_points. It returns the step it stopped at.
func (s *Service) beforePayment(ctx context.Context, span trace.Span, req Request, rec *record) (string, error) {
	steps := []struct {
		name string
		run  func() error
	}{
		{StepValidatingCart, func() error { return s.validateCart(ctx, span, req, rec) }},
		{StepReservingInventory, func() error { return s.reserveInventory(ctx, span, req, rec) }},
		{StepHoldingPoints, func() error { return s.holdPoints(ctx, span, rec) }},
	}
	for _, st := range steps {
		if err := s.timed(ctx, span, st.name, st.run); err != nil {
			return st.name, err
		}
	}
	return "", nil
}

// validateCart runs validating_cart: the cart is held for the checkout and
// its prices checked; rec takes its items and total. The cart.validate span
// names the reservation the next step makes (inventory.ReservationID).
func (s *Service) validateCart(ctx context.Context, span trace.Span, req Request, rec *record) error {
	v, err := s.cfg.Carts.Validate(ctx, req.CartID, req.MemberID, req.CheckoutID, inventory.ReservationID(req.CheckoutID))
	if err != nil {
		return err
	}
	rec.Total = v.Total
	rec.Items = toLines(v.Items)
	span.AddEvent("cart_validated", trace.WithAttributes(attribute.Int("cart.item_count", len(rec.Items))))
	span.SetAttributes(attribute.Int64("checkout.total", v.Total.Amount), attribute.String("checkout.currency", v.Total.Currency),
		attribute.Int("checkout.item_count", len(rec.Items)))
	return s.failPoint(StepValidatingCart)
}

// reserveInventory runs reserving_inventory under the checkout id.
func (s *Service) reserveInventory(ctx context.Context, span trace.Span, req Request, rec *record) error {
	res, err := s.cfg.Inventory.Reserve(ctx, req.CheckoutID, reserveItems(rec.Items))
	if err != nil {
		return err
	}
	rec.ReservationID = res.ID
	span.SetAttributes(attribute.String("inventory.reservation_id", res.ID))
	return s.failPoint(StepReservingInventory)
}

// holdPoints runs holding_points. The cart hold and the reservation need
// nothing but the row begin wrote to be found again. The points hold is found
// only by asking for it, and a charge becomes an order only with the items
// and amounts, so those are recorded before either: the one save between
// begin and the outcome. In one transaction (LocalTx) the order of the save
// and the hold does not matter to recovery, and saving last records the
// hold's id too.
func (s *Service) holdPoints(ctx context.Context, span trace.Span, rec *record) error {
	if err := s.pricePoints(rec); err != nil {
		return err
	}
	rec.Step = StepHoldingPoints
	if !s.cfg.LocalTx {
		if err := s.save(ctx, rec); err != nil {
			return err
		}
	}
	if rec.PointsRedeemed > 0 {
		span.SetAttributes(attribute.Int64("checkout.points_redeemed", rec.PointsRedeemed))
		holdID, err := s.cfg.Loyalty.HoldPoints(ctx, rec.MemberID, rec.PointsRedeemed, rec.ID)
		if err != nil {
			return err
		}
		rec.HoldID = holdID
	}
	if s.cfg.LocalTx {
		if err := s.save(ctx, rec); err != nil {
			return err
		}
	}
	if rec.PointsRedeemed == 0 {
		return nil
	}
	return s.failPoint(StepHoldingPoints)
}

// charge runs processing_payment: not recorded; Recover asks the gateway by
// the idempotency key (the checkout id) whether a charge exists. A failure is
// handled (fail) and returned.
func (s *Service) charge(ctx context.Context, span trace.Span, req Request, rec *record) (Result, string, error) {
	cash, err := rec.cash()
	if err != nil {
		return s.fail(ctx, rec, StepProcessingPayment, err)
	}
	err = s.timed(ctx, span, StepProcessingPayment, func() error {
		if cash.Amount == 0 {
			return nil // paid in full with points
		}
		if err := s.leaseHeld(rec, StepProcessingPayment); err != nil {
			return err
		}
		ch, err := s.cfg.Payments.Charge(ctx, payment.ChargeRequest{IdempotencyKey: rec.ID, Amount: cash, Token: req.PaymentToken,
			Description: "Godwit shop order", OrderID: orderID(rec.ID), CaptureManual: s.cfg.CaptureManual})
		if err != nil {
			return err
		}
		rec.ChargeID = ch.ID
		if ch.Status == payment.StatusRequiresAction {
			rec.pending = &ch
			span.AddEvent("payment_requires_action", trace.WithAttributes(attribute.String("payment.charge_id", ch.ID)))
			return nil
		}
		span.AddEvent("payment_processed", trace.WithAttributes(attribute.String("payment.charge_id", ch.ID)))
		return s.failPoint(StepProcessingPayment)
	})
	if err != nil {
		return s.fail(ctx, rec, StepProcessingPayment, err)
	}
	return Result{}, "", nil
}

func orderCreated(span trace.Span, rec *record, o order.Order) {
	rec.OrderID = o.ID
	span.AddEvent("order_created", trace.WithAttributes(attribute.String("order.id", o.ID)))
	span.SetAttributes(attribute.String("order.id", o.ID))
}

// finishDeferrable runs finishing once the order exists: the order is paid, so
// from here nothing fails the checkout; a failure leaves the rest to Recover.
func (s *Service) finishDeferrable(ctx context.Context, span trace.Span, rec *record) (Result, string, error) {
	err := s.timed(ctx, span, StepFinishing, func() error {
		return s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error { return s.finish(ctx, rec) })
	})
	if err != nil {
		if errors.Is(err, errInterrupted) {
			return Result{}, StepFinishing, err
		}
		s.log.WarnContext(ctx, "checkout finishing deferred to recovery", "checkout_id", rec.ID, "order_id", rec.OrderID, "error", err.Error())
		res := s.result(rec)
		if !s.cfg.CaptureManual {
			res.Status = string(order.Paid)
		}
		return res, StepComplete, nil
	}
	return s.result(rec), StepComplete, nil
}

// pricePoints values the points to redeem against the total.
func (s *Service) pricePoints(rec *record) error {
	if rec.PointsRedeemed == 0 {
		rec.PointsAmount = money.Money{Currency: rec.Total.Currency}
		return nil
	}
	if s.cfg.Loyalty == nil || rec.MemberID == "" {
		return errs.Coded(errs.Unprocessable, "points_unavailable", "only members can pay with points").With("field", "points_to_redeem")
	}
	if rec.Total.Currency != s.cfg.Program.Currency {
		return errs.Coded(errs.Unprocessable, "points_currency_mismatch", "points pay only for %s amounts", s.cfg.Program.Currency)
	}
	value := s.cfg.Program.AmountForPoints(rec.PointsRedeemed)
	if value.Amount > rec.Total.Amount {
		maxPts, _ := s.cfg.Program.PointsForAmount(rec.Total)
		return errs.Coded(errs.Unprocessable, "points_exceed_total", "%d points are worth more than the order total", rec.PointsRedeemed).
			With("max_points", maxPts).With("field", "points_to_redeem")
	}
	rec.PointsAmount = value
	return nil
}

func reserveItems(items []lineItem) []inventory.Item {
	out := make([]inventory.Item, len(items))
	for i, it := range items {
		out[i] = inventory.Item{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	return out
}

// orderLines returns the order lines of rec's items, with product names and
// SKUs when the catalog has them. It only reads, so in one process it runs
// before the transaction that creates the order.
func (s *Service) orderLines(ctx context.Context, rec *record) []order.Item {
	lines := make([]order.Item, len(rec.Items))
	ids := make([]string, len(rec.Items))
	for i, it := range rec.Items {
		lines[i] = order.Item{ProductID: it.ProductID, Quantity: it.Quantity, UnitPrice: it.UnitPrice}
		ids[i] = it.ProductID
	}
	if s.cfg.Products != nil {
		if ps, err := s.cfg.Products.Products(ctx, ids); err == nil {
			for i := range lines {
				if p, ok := ps[lines[i].ProductID]; ok {
					lines[i].SKU, lines[i].Name = p.SKU, p.Name
				}
			}
		}
	}
	return lines
}

// createOrder commits the reservation (so the reaper cannot return the stock)
// and creates the order, under the id allocated before the charge (orderID),
// with its confirmation; both are idempotent. Each
// service committing on its own, an order that exists is looked up first: its
// reservation may since have expired. In one transaction (LocalTx) the
// reservation is committed with the order, so an existing order's reservation
// is committed too, and Create returns the existing order by checkout id.
func (s *Service) createOrder(ctx context.Context, rec *record, lines []order.Item) (order.Order, error) {
	if !s.cfg.LocalTx {
		if o, err := s.cfg.Orders.ByCheckout(ctx, rec.ID); err == nil {
			return o, nil
		}
	}
	if err := s.cfg.Inventory.Commit(ctx, rec.ReservationID); err != nil {
		return order.Order{}, err
	}
	cash, err := rec.cash()
	if err != nil {
		return order.Order{}, err
	}
	no := order.NewOrder{ID: orderID(rec.ID), CheckoutID: rec.ID, MemberID: rec.MemberID, Items: lines, Total: rec.Total,
		PointsRedeemed: rec.PointsRedeemed, PointsAmount: rec.PointsAmount, Charged: cash, ChargeID: rec.ChargeID,
		AwaitFulfilment: s.cfg.CaptureManual}
	if rec.Email != "" {
		no.Confirmation = confirmation(rec, lines, cash, s.cfg.CaptureManual)
	}
	return s.cfg.Orders.Create(ctx, no)
}

func confirmation(rec *record, lines []order.Item, cash money.Money, manual bool) *notify.Message {
	var b strings.Builder
	b.WriteString("Thank you for your order {order_id}.\n\n")
	for _, l := range lines {
		name := l.Name
		if name == "" {
			name = l.ProductID
		}
		line, _ := l.UnitPrice.Mul(l.Quantity)
		fmt.Fprintf(&b, "  %d x %s  %s\n", l.Quantity, name, line)
	}
	fmt.Fprintf(&b, "\nTotal: %s\n", rec.Total)
	if rec.PointsRedeemed > 0 {
		fmt.Fprintf(&b, "Paid with %d points: %s\n", rec.PointsRedeemed, rec.PointsAmount)
	}
	if manual {
		fmt.Fprintf(&b, "Authorised on your card: %s (charged when your order ships, less anything we cannot send)\n", cash)
	} else {
		fmt.Fprintf(&b, "Charged to your card: %s\n", cash)
	}
	return &notify.Message{Kind: "order_confirmation", To: rec.Email, Subject: "Your Godwit order {order_id}", Body: b.String()}
}

// finish captures the points hold, earns purchase points, confirms the order
// and marks the checkout completed, recording every id the saga collected.
// Every call in it is idempotent.
func (s *Service) finish(ctx context.Context, rec *record) error {
	if rec.PointsRedeemed > 0 && s.cfg.Loyalty != nil {
		if rec.HoldID == "" {
			id, err := s.cfg.Loyalty.HoldPoints(ctx, rec.MemberID, rec.PointsRedeemed, rec.ID)
			if err != nil {
				return fmt.Errorf("checkout: find points hold: %w", err)
			}
			rec.HoldID = id
		}
		if err := s.cfg.Loyalty.CapturePointsHold(ctx, rec.HoldID); err != nil {
			return fmt.Errorf("checkout: capture points: %w", err)
		}
	}
	cash, err := rec.cash()
	if err != nil {
		return err
	}
	if s.cfg.CaptureManual {
		// The order stays authorized: points are earned on what fulfilment
		// captures, and fulfilment confirms it.
		return s.complete(ctx, rec)
	}
	if rec.MemberID != "" && s.cfg.Loyalty != nil && cash.Amount > 0 {
		earned, err := s.cfg.Loyalty.EarnPurchase(ctx, rec.MemberID, rec.OrderID, cash)
		if err != nil {
			return fmt.Errorf("checkout: earn points: %w", err)
		}
		rec.PointsEarned = earned.Points
	}
	if _, err := s.cfg.Orders.Confirm(ctx, rec.OrderID, rec.PointsEarned); err != nil {
		return err
	}
	return s.complete(ctx, rec)
}

// complete records the checkout completed, after the finishing fault point.
func (s *Service) complete(ctx context.Context, rec *record) error {
	if err := s.failPoint(StepFinishing); err != nil {
		return err
	}
	rec.Step, rec.State = StepComplete, stateCompleted
	return s.save(ctx, rec)
}

// result is the answer of a completed checkout: with manual capture its
// order is authorized (and Charged what was authorised).
func (s *Service) result(rec *record) Result {
	res := rec.result()
	if s.cfg.CaptureManual {
		res.Status = string(order.Authorized)
	}
	return res
}

// fail handles an error at step. An interruption (fault hook, lost lease,
// progress not recorded) leaves everything for Recover. A business failure is
// compensated now and recorded, and the error names the step.
func (s *Service) fail(ctx context.Context, rec *record, step string, err error) (Result, string, error) {
	if errors.Is(err, errInterrupted) {
		return Result{}, step, err
	}
	if !isBusiness(err) {
		// Unexpected or transient: the effect of this step is unknown, so let
		// Recover decide with fresh information rather than guess here.
		if step != StepValidatingCart && step != StepReservingInventory {
			s.log.ErrorContext(ctx, "checkout step failed; left for recovery", "checkout_id", rec.ID, "step", step, "error", err.Error())
			s.recordStep(ctx, rec, step)
			return Result{}, step, interrupted(step, err)
		}
	}
	if aerr := s.abort(context.WithoutCancel(ctx), rec, func() { markFailed(rec, step, err) }); aerr != nil {
		s.log.ErrorContext(ctx, "checkout compensation failed; left for recovery", "checkout_id", rec.ID, "step", step, "error", aerr.Error())
	}
	return Result{}, step, withStep(err, step)
}

// recordStep records on a checkout left for recovery the step it stopped at
// when that step is later than the one recorded: processing_payment and
// creating_order are not recorded as they start (a write each on the happy
// path), so a checkout whose payment service was down answered 503 at
// processing_payment while its record said holding_points, and the recovery
// that undid it then named holding_points as the failing step. Best effort:
// a failed save (the lease lost, the database gone) leaves the record as it
// was, which recovery handles alike, only naming the earlier step.
func (s *Service) recordStep(ctx context.Context, rec *record, step string) {
	if rec.State != stateInProgress || stepRank[step] <= stepRank[rec.Step] {
		return
	}
	prev := rec.Step
	rec.Step = step
	if err := s.save(context.WithoutCancel(ctx), rec); err != nil {
		rec.Step = prev
		s.log.WarnContext(ctx, "checkout step not recorded", "checkout_id", rec.ID, "step", step, "error", err.Error())
	}
}

// isBusiness reports whether err is a rule's answer (insufficient stock, a
// changed price, not enough points, a decline) rather than a fault whose
// effect is unknown.
func isBusiness(err error) bool {
	if errors.Is(err, db.ErrJoinedTxFailed) {
		return false // another call's failure, wrapped
	}
	e, ok := errs.As(err)
	return ok && e.Kind != errs.Internal && e.Kind != errs.Unavailable && e.Kind != errs.Timeout && e.Kind != errs.BadGateway
}

// markFailed records on rec that the checkout failed at step with err, as a
// replay will answer it.
func markFailed(rec *record, step string, err error) {
	rec.State, rec.FailureStep = stateFailed, step
	e, ok := errs.As(err)
	if !ok {
		e = errs.New(errs.Internal, "checkout failed")
	}
	rec.FailureKind, rec.FailureCode, rec.FailureMessage = string(e.Kind), errs.CodeOf(err), e.Message
	if e.Kind == errs.Internal {
		rec.FailureMessage = "checkout failed"
	}
	rec.FailureDetails = e.Details
}

// abort undoes every recorded effect and then records the outcome that mark
// sets on rec. The charge is voided first: the payment service commits on its
// own. The points hold, the stock reservation, the cart hold and the record
// follow, in one transaction in one process (LocalTx). Each undo is idempotent.
func (s *Service) abort(ctx context.Context, rec *record, mark func()) error {
	if err := s.leaseHeld(rec, rec.Step); err != nil {
		return err // taken over: undoing is now the new holder's decision
	}
	if rec.ChargeID != "" {
		if _, err := s.cfg.Payments.Void(ctx, rec.ChargeID); err != nil {
			// A charge that never moved money (declined, or cancelled after
			// a failed or abandoned authentication) has nothing to void.
			if ch, rerr := s.cfg.Payments.Retrieve(ctx, rec.ChargeID); rerr != nil ||
				(ch.Status != payment.StatusDeclined && ch.Status != payment.StatusVoided) {
				return fmt.Errorf("void charge: %w", err)
			}
		}
	}
	return s.inLocalTx(ctx, func(ctx context.Context, _ *db.Tx) error {
		if rec.HoldID != "" && s.cfg.Loyalty != nil {
			if err := s.cfg.Loyalty.VoidPointsHold(ctx, rec.HoldID); err != nil {
				return fmt.Errorf("void points hold: %w", err)
			}
		}
		if rec.ReservationID != "" {
			if _, err := s.cfg.Inventory.Release(ctx, rec.ReservationID); err != nil {
				return fmt.Errorf("release stock: %w", err)
			}
		}
		if err := s.cfg.Carts.Release(ctx, rec.CartID, rec.ID); err != nil {
			return fmt.Errorf("release cart: %w", err)
		}
		mark()
		return s.save(ctx, rec)
	})
}

func traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

func metricStatus(status string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("checkout.status", status))
}
