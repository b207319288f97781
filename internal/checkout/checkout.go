package checkout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/inventory"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/order"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/db"
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
	// Lease is how long a running checkout is protected from the recovery pass
	// (longer than any checkout takes); default 2 minutes.
	Lease time.Duration
	// FailAfter is a test-only fault point: called after each step's external
	// effect and before the saga goes on, a non-nil error stops the saga there
	// as if the process had died (nothing is compensated), for Recover to clean up.
	FailAfter func(step string) error
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = metricnoop.NewMeterProvider()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2 * time.Minute
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

// ID derives a checkout's id from the caller (auth principal's actor) and the
// Idempotency-Key, so a duplicate request maps onto the same saga.
func ID(owner, idempotencyKey string) string {
	sum := sha256.Sum256([]byte(owner + "\x00" + idempotencyKey))
	return "co_" + hex.EncodeToString(sum[:16])
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
	if !s.cfg.Now().Before(rec.leaseUntil) {
		return interrupted(step, errLeaseExpired)
	}
	return nil
}

func (s *Service) failPoint(step string) error {
	if s.cfg.FailAfter == nil {
		return nil
	}
	if err := s.cfg.FailAfter(step); err != nil {
		return interrupted(step, err)
	}
	return nil
}

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
	rec, err := s.begin(ctx, req, traceID)
	if err != nil {
		return Result{}, StepInitiated, withStep(err, StepInitiated)
	}
	switch rec.State {
	case stateCompleted:
		span.SetAttributes(attribute.Bool("checkout.replayed", true))
		return rec.result(), StepComplete, nil
	case stateFailed:
		span.SetAttributes(attribute.Bool("checkout.replayed", true))
		return Result{}, rec.FailureStep, rec.failure()
	}
	if err := s.failPoint(StepInitiated); err != nil {
		return Result{}, StepInitiated, err
	}

	// validating_cart
	var items []lineItem
	err = s.timed(ctx, span, StepValidatingCart, func() error {
		v, err := s.cfg.Carts.Validate(ctx, req.CartID, req.MemberID, req.CheckoutID)
		if err != nil {
			return err
		}
		items = toLines(v.Items)
		rec.Total = v.Total
		rec.Items = items
		span.AddEvent("cart_validated", trace.WithAttributes(attribute.Int("cart.item_count", len(items))))
		span.SetAttributes(attribute.Int64("checkout.total", v.Total.Amount), attribute.String("checkout.currency", v.Total.Currency),
			attribute.Int("checkout.item_count", len(items)))
		return s.failPoint(StepValidatingCart)
	})
	if err != nil {
		return s.fail(ctx, rec, StepValidatingCart, err)
	}

	// reserving_inventory
	err = s.timed(ctx, span, StepReservingInventory, func() error {
		res, err := s.cfg.Inventory.Reserve(ctx, req.CheckoutID, reserveItems(items))
		if err != nil {
			return err
		}
		rec.ReservationID = res.ID
		span.SetAttributes(attribute.String("inventory.reservation_id", res.ID))
		return s.failPoint(StepReservingInventory)
	})
	if err != nil {
		return s.fail(ctx, rec, StepReservingInventory, err)
	}

	// holding_points. The cart hold and the reservation need nothing but the
	// row begin wrote to be found again. The points hold is found only by
	// asking for it, and a charge becomes an order only with the items and
	// amounts, so those are recorded now, before either: the one save between
	// begin and the outcome.
	err = s.timed(ctx, span, StepHoldingPoints, func() error {
		if err := s.pricePoints(rec); err != nil {
			return err
		}
		rec.Step = StepHoldingPoints
		if err := s.save(ctx, rec); err != nil {
			return err
		}
		if rec.PointsRedeemed == 0 {
			return nil
		}
		span.SetAttributes(attribute.Int64("checkout.points_redeemed", rec.PointsRedeemed))
		holdID, err := s.cfg.Loyalty.HoldPoints(ctx, rec.MemberID, rec.PointsRedeemed, rec.ID)
		if err != nil {
			return err
		}
		rec.HoldID = holdID
		return s.failPoint(StepHoldingPoints)
	})
	if err != nil {
		return s.fail(ctx, rec, StepHoldingPoints, err)
	}

	// processing_payment: not recorded; Recover asks the gateway by the
	// idempotency key (the checkout id) whether a charge exists.
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
		ch, err := s.cfg.Payments.Charge(ctx, payment.ChargeRequest{IdempotencyKey: rec.ID, Amount: cash, Token: req.PaymentToken, Description: "Godwit shop order"})
		if err != nil {
			return err
		}
		rec.ChargeID = ch.ID
		span.AddEvent("payment_processed", trace.WithAttributes(attribute.String("payment.charge_id", ch.ID)))
		return s.failPoint(StepProcessingPayment)
	})
	if err != nil {
		return s.fail(ctx, rec, StepProcessingPayment, err)
	}

	// creating_order: not recorded; Recover finds the order by checkout id.
	var o order.Order
	err = s.timed(ctx, span, StepCreatingOrder, func() error {
		if err := s.leaseHeld(rec, StepCreatingOrder); err != nil {
			return err
		}
		var err error
		if o, err = s.createOrder(ctx, rec); err != nil {
			return err
		}
		rec.OrderID = o.ID
		span.AddEvent("order_created", trace.WithAttributes(attribute.String("order.id", o.ID)))
		span.SetAttributes(attribute.String("order.id", o.ID))
		return s.failPoint(StepCreatingOrder)
	})
	if err != nil {
		return s.fail(ctx, rec, StepCreatingOrder, err)
	}

	// finishing: the order exists and is paid, so from here nothing fails the
	// checkout; a failure leaves the rest to Recover.
	err = s.timed(ctx, span, StepFinishing, func() error { return s.finish(ctx, rec) })
	if err != nil {
		if errors.Is(err, errInterrupted) {
			return Result{}, StepFinishing, err
		}
		s.log.WarnContext(ctx, "checkout finishing deferred to recovery", "checkout_id", rec.ID, "order_id", rec.OrderID, "error", err.Error())
		res := rec.result()
		res.Status = string(order.Paid)
		return res, StepComplete, nil
	}
	return rec.result(), StepComplete, nil
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

// createOrder commits the reservation (so the reaper cannot return the stock)
// and creates the order with its confirmation; both are idempotent.
func (s *Service) createOrder(ctx context.Context, rec *record) (order.Order, error) {
	if o, err := s.cfg.Orders.ByCheckout(ctx, rec.ID); err == nil {
		return o, nil
	}
	if err := s.cfg.Inventory.Commit(ctx, rec.ReservationID); err != nil {
		return order.Order{}, err
	}
	cash, err := rec.cash()
	if err != nil {
		return order.Order{}, err
	}
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
	no := order.NewOrder{CheckoutID: rec.ID, MemberID: rec.MemberID, Items: lines, Total: rec.Total,
		PointsRedeemed: rec.PointsRedeemed, PointsAmount: rec.PointsAmount, Charged: cash, ChargeID: rec.ChargeID}
	if rec.Email != "" {
		no.Confirmation = confirmation(rec, lines, cash)
	}
	return s.cfg.Orders.Create(ctx, no)
}

func confirmation(rec *record, lines []order.Item, cash money.Money) *notify.Message {
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
	fmt.Fprintf(&b, "Charged to your card: %s\n", cash)
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
	if err := s.failPoint(StepFinishing); err != nil {
		return err
	}
	rec.Step, rec.State = StepComplete, stateCompleted
	return s.save(ctx, rec)
}

// fail handles an error at step. An interruption (fault hook, lost lease,
// progress not recorded) leaves everything for Recover. A business failure is
// compensated now and recorded, and the error names the step.
func (s *Service) fail(ctx context.Context, rec *record, step string, err error) (Result, string, error) {
	if errors.Is(err, errInterrupted) {
		return Result{}, step, err
	}
	if e, ok := errs.As(err); !ok || e.Kind == errs.Internal || e.Kind == errs.Unavailable || e.Kind == errs.Timeout || e.Kind == errs.BadGateway {
		// Unexpected or transient: the effect of this step is unknown, so let
		// Recover decide with fresh information rather than guess here.
		if step != StepValidatingCart && step != StepReservingInventory {
			s.log.ErrorContext(ctx, "checkout step failed; left for recovery", "checkout_id", rec.ID, "step", step, "error", err.Error())
			return Result{}, step, interrupted(step, err)
		}
	}
	cctx := context.WithoutCancel(ctx)
	if cerr := s.compensate(cctx, rec); cerr != nil {
		s.log.ErrorContext(ctx, "checkout compensation failed; left for recovery", "checkout_id", rec.ID, "step", step, "error", cerr.Error())
		return Result{}, step, withStep(err, step)
	}
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
	if serr := s.save(cctx, rec); serr != nil {
		s.log.ErrorContext(ctx, "recording failed checkout", "checkout_id", rec.ID, "error", serr.Error())
	}
	return Result{}, step, withStep(err, step)
}

// compensate undoes every recorded effect: the charge, the points hold, the
// stock reservation and the cart hold. Each undo is idempotent.
func (s *Service) compensate(ctx context.Context, rec *record) error {
	if rec.ChargeID != "" {
		if _, err := s.cfg.Payments.Void(ctx, rec.ChargeID); err != nil {
			return fmt.Errorf("void charge: %w", err)
		}
	}
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
	return nil
}

func traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

func metricStatus(status string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("checkout.status", status))
}
