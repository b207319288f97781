// Package stripe is a payment.Provider on Stripe PaymentIntents, built on the
// official SDK (github.com/stripe/stripe-go/v85).
//
// A charge is one PaymentIntent, created and confirmed in the same request with
// the checkout's idempotency key as Stripe's Idempotency-Key, so the SDK's own
// network retries and Godwit's saga retries both land on the first intent. The
// key is also stored in the intent's metadata (godwit_idempotency_key), which is
// how Lookup finds it again after a crash. Void cancels an intent that has not
// captured money and refunds one that has; Refund creates a Stripe refund under
// the caller's key.
//
// The secret key lives only inside the SDK client: it is never logged, never put
// on telemetry and never part of an error. Stripe's own error text is not passed
// on either (it serialises the whole error object, payment method included);
// errors carry the type, code, HTTP status and request id only.
package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/payment"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// MetadataKey is the PaymentIntent metadata key that holds Godwit's
// idempotency key (the checkout id).
const MetadataKey = "godwit_idempotency_key"

// RequestIDAttribute is the span attribute that carries Stripe's request id
// (the Request-Id response header) of the last Stripe call made for the span.
const RequestIDAttribute = attribute.Key("payment.stripe_request_id")

// mockHeader is sent by stripe-mock, and never by Stripe itself.
const mockHeader = "Stripe-Mock-Version"

// Config configures the provider.
type Config struct {
	// SecretKey is the Stripe secret (sk_…) or restricted (rk_…) key.
	SecretKey string
	// APIBase replaces https://api.stripe.com, e.g. http://127.0.0.1:12111 for
	// stripe-mock.
	APIBase string
	// HTTPClient is the client to use; its transport is wrapped with otelhttp
	// (the client itself is not modified). Default: a client with a 30s timeout.
	HTTPClient *http.Client
	// MaxNetworkRetries is how often the SDK retries a request that failed on
	// the network or with a retryable status, reusing the Idempotency-Key.
	// Zero means the SDK default (2); negative means no retries.
	MaxNetworkRetries int
	// LookupWindow is how far back Lookup lists recent intents when Stripe's
	// search index has not caught up yet (it lags up to about a minute).
	// Default 15 minutes.
	LookupWindow time.Duration
	// TracerProvider and MeterProvider instrument the HTTP client; nil means
	// the global providers.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Now is the clock used for the lookup window; default time.Now.
	Now func() time.Time
	// ReturnURL, when set, is where Stripe sends the customer back after a
	// 3-D Secure authentication (the intent's return_url).
	ReturnURL string
}

// Provider is a payment.Provider on Stripe.
type Provider struct {
	client    *stripeapi.Client
	window    time.Duration
	now       func() time.Time
	returnURL string
}

var _ payment.Provider = (*Provider)(nil)

// New returns a Stripe provider. It fails when the key is missing or does not
// look like a Stripe secret or restricted key.
func New(cfg Config) (*Provider, error) {
	if err := checkKey(cfg.SecretKey); err != nil {
		return nil, err
	}
	base := http.DefaultTransport
	client := &http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
		if c.Transport != nil {
			base = c.Transport
		}
	}
	var opts []otelhttp.Option
	if cfg.TracerProvider != nil {
		opts = append(opts, otelhttp.WithTracerProvider(cfg.TracerProvider))
	}
	if cfg.MeterProvider != nil {
		opts = append(opts, otelhttp.WithMeterProvider(cfg.MeterProvider))
	}
	client.Transport = otelhttp.NewTransport(base, opts...)

	bc := &stripeapi.BackendConfig{
		HTTPClient: client,
		// The SDK's default logger writes request failures to stderr; Godwit
		// logs through slog at its own edge instead.
		LeveledLogger: &stripeapi.LeveledLogger{Level: stripeapi.LevelNull},
	}
	switch {
	case cfg.MaxNetworkRetries < 0:
		bc.MaxNetworkRetries = stripeapi.Int64(0)
	case cfg.MaxNetworkRetries > 0:
		bc.MaxNetworkRetries = stripeapi.Int64(int64(cfg.MaxNetworkRetries))
	}
	if cfg.APIBase != "" {
		bc.URL = stripeapi.String(strings.TrimRight(cfg.APIBase, "/"))
	}
	if cfg.LookupWindow <= 0 {
		cfg.LookupWindow = 15 * time.Minute
	}
	defaults.Fill(defaults.Fields{Now: &cfg.Now})
	return &Provider{
		client:    stripeapi.NewClient(cfg.SecretKey, stripeapi.WithBackends(stripeapi.NewBackendsWithConfig(bc))),
		window:    cfg.LookupWindow,
		now:       cfg.Now,
		returnURL: cfg.ReturnURL,
	}, nil
}

// Name implements payment.Provider.
func (p *Provider) Name() string { return "stripe" }

// Charge implements payment.Provider: one PaymentIntent, created and confirmed
// in one request, card only. A card that asks for customer authentication
// (3-D Secure) answers a requires_action charge with the intent's client
// secret and next action; the checkout waits for the customer, then settles
// on Retrieve (or the webhook).
func (p *Provider) Charge(ctx context.Context, req payment.ChargeRequest) (payment.Charge, error) {
	if req.IdempotencyKey == "" {
		return payment.Charge{}, errs.Coded(errs.Invalid, "idempotency_key_required", "a charge needs an idempotency key")
	}
	if err := req.Amount.ValidatePositive(); err != nil {
		return payment.Charge{}, errs.Coded(errs.Invalid, "invalid_amount", "a charge must be a positive amount").Wrap(err)
	}
	pm, err := p.paymentMethod(ctx, req)
	if err != nil {
		return payment.Charge{}, err
	}
	params := &stripeapi.PaymentIntentCreateParams{
		Amount:             stripeapi.Int64(req.Amount.Amount),
		Currency:           stripeapi.String(strings.ToLower(req.Amount.Currency)),
		PaymentMethod:      stripeapi.String(pm),
		PaymentMethodTypes: []*string{stripeapi.String("card")},
		Confirm:            stripeapi.Bool(true),
		Metadata:           map[string]string{MetadataKey: req.IdempotencyKey},
	}
	if req.Description != "" {
		params.Description = stripeapi.String(req.Description)
	}
	if req.CaptureManual {
		// Authorise only: the intent waits in requires_capture until Capture.
		params.CaptureMethod = stripeapi.String(string(stripeapi.PaymentIntentCaptureMethodManual))
	}
	if p.returnURL != "" {
		// With a return URL Stripe answers a redirect_to_url next action,
		// which a plain page can follow without Stripe.js.
		params.ReturnURL = stripeapi.String(p.returnURL)
	}
	params.SetIdempotencyKey(req.IdempotencyKey)
	pi, err := p.client.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return payment.Charge{}, p.fail(ctx, "charge", err)
	}
	recordRequestID(ctx, pi.LastResponse)
	ch := toCharge(pi, req.IdempotencyKey)
	if req.CaptureManual && ch.Status == payment.StatusSucceeded && fromMock(pi.LastResponse) {
		ch.Status = payment.StatusAuthorized // stripe-mock's fixture status does not follow capture_method
	}
	if ch.Status == payment.StatusDeclined {
		return payment.Charge{}, &payment.DeclineError{Code: ch.DeclineCode, Soft: softCodes[ch.DeclineCode]}
	}
	return ch, nil
}

// paymentMethod turns the checkout's token into something a PaymentIntent
// takes. PaymentMethod ids (pm_…, including test ones such as pm_card_visa)
// and card or source ids pass through; a card token (tok_…) first becomes a
// PaymentMethod, under an idempotency key derived from the charge's so a retry
// gets the same PaymentMethod and therefore an identical PaymentIntent request.
func (p *Provider) paymentMethod(ctx context.Context, req payment.ChargeRequest) (string, error) {
	if req.Token == "" {
		return "", errs.Coded(errs.Unprocessable, "invalid_payment_token", "a charge needs a payment token")
	}
	if !strings.HasPrefix(req.Token, "tok_") {
		return req.Token, nil
	}
	params := &stripeapi.PaymentMethodCreateParams{
		Type: stripeapi.String("card"),
		Card: &stripeapi.PaymentMethodCreateCardParams{Token: stripeapi.String(req.Token)},
	}
	params.SetIdempotencyKey(req.IdempotencyKey + "/payment_method")
	pm, err := p.client.V1PaymentMethods.Create(ctx, params)
	if err != nil {
		return "", p.fail(ctx, "payment method", err)
	}
	recordRequestID(ctx, pm.LastResponse)
	return pm.ID, nil
}

// Lookup implements payment.Provider. It asks Stripe's search API for the
// intent whose metadata holds the key; search is eventually consistent (new
// intents appear within about a minute), so on a miss it also lists the intents
// created in the last LookupWindow and matches the metadata itself before it
// answers "not found".
func (p *Provider) Lookup(ctx context.Context, idempotencyKey string) (payment.Charge, error) {
	if idempotencyKey == "" {
		return payment.Charge{}, errs.Coded(errs.Invalid, "idempotency_key_required", "a lookup needs an idempotency key")
	}
	sp := &stripeapi.PaymentIntentSearchParams{}
	sp.Query = searchQuery(idempotencyKey)
	sp.Limit = stripeapi.Int64(10)
	sp.AddExpand("data.latest_charge")
	list := p.client.V1PaymentIntents.Search(ctx, sp)
	var found *stripeapi.PaymentIntent
	n := 0
	for pi, err := range list.All(ctx) {
		if err != nil {
			return payment.Charge{}, p.fail(ctx, "lookup", err)
		}
		if found == nil || better(pi, found) {
			found = pi
		}
		if n++; n >= 10 {
			break // a key names one intent (a few when attempts were declined)
		}
	}
	recordRequestID(ctx, list.LastResponse())
	if found != nil {
		return toCharge(found, idempotencyKey), nil
	}
	return p.lookupRecent(ctx, idempotencyKey)
}

// maxRecentScan bounds the fallback listing; past it Lookup reports the answer
// as unknown rather than guess "not found".
const maxRecentScan = 2000

func (p *Provider) lookupRecent(ctx context.Context, key string) (payment.Charge, error) {
	lp := &stripeapi.PaymentIntentListParams{
		CreatedRange: &stripeapi.RangeQueryParams{GreaterThanOrEqual: p.now().Add(-p.window).Unix()},
	}
	lp.Limit = stripeapi.Int64(100)
	lp.AddExpand("data.latest_charge")
	list := p.client.V1PaymentIntents.List(ctx, lp)
	var found *stripeapi.PaymentIntent
	n := 0
	for pi, err := range list.All(ctx) {
		if err != nil {
			return payment.Charge{}, p.fail(ctx, "lookup", err)
		}
		if pi.Metadata[MetadataKey] == key && (found == nil || better(pi, found)) {
			found = pi
		}
		if n++; n >= maxRecentScan {
			recordRequestID(ctx, list.LastResponse())
			if found != nil {
				return toCharge(found, key), nil
			}
			return payment.Charge{}, errs.Coded(errs.Unavailable, "charge_lookup_incomplete", "the payment gateway could not be searched completely; retry later")
		}
	}
	recordRequestID(ctx, list.LastResponse())
	if found != nil {
		return toCharge(found, key), nil
	}
	return payment.Charge{}, errs.Coded(errs.NotFound, payment.CodeChargeNotFound, "no charge was made under this idempotency key")
}

// better prefers an intent that moved money over a failed attempt.
func better(a, b *stripeapi.PaymentIntent) bool {
	return a.Status == stripeapi.PaymentIntentStatusSucceeded && b.Status != stripeapi.PaymentIntentStatusSucceeded
}

// searchQuery is the search-language query for an exact metadata match; quotes
// and backslashes in the key are escaped.
func searchQuery(key string) string {
	esc := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(key)
	return "metadata['" + MetadataKey + "']:'" + esc + "'"
}

// Void implements payment.Provider. An intent that has not captured money is
// cancelled; one that has (Godwit charges with automatic capture) is reversed
// with a full refund, which is what voiding means for a captured card payment.
// Voiding a voided charge returns it unchanged; a charge that was already
// partly or fully refunded cannot be voided.
func (p *Provider) Void(ctx context.Context, chargeID string) (payment.Charge, error) {
	rp := &stripeapi.PaymentIntentRetrieveParams{}
	rp.AddExpand("latest_charge")
	pi, err := p.client.V1PaymentIntents.Retrieve(ctx, chargeID, rp)
	if err != nil {
		return payment.Charge{}, p.fail(ctx, "void", err)
	}
	recordRequestID(ctx, pi.LastResponse)
	key := pi.Metadata[MetadataKey]
	switch pi.Status {
	case stripeapi.PaymentIntentStatusCanceled:
		return toCharge(pi, key), nil
	case stripeapi.PaymentIntentStatusSucceeded:
		if pi.LatestCharge != nil && pi.LatestCharge.AmountRefunded > 0 && !pi.LatestCharge.Refunded {
			return payment.Charge{}, errs.Coded(errs.Conflict, "charge_not_voidable", "a partially refunded charge cannot be voided")
		}
		if pi.LatestCharge == nil || !pi.LatestCharge.Refunded {
			params := &stripeapi.RefundCreateParams{PaymentIntent: stripeapi.String(pi.ID), Reason: stripeapi.String("requested_by_customer")}
			params.Metadata = map[string]string{"godwit_void": "true"}
			params.SetIdempotencyKey("void/" + pi.ID)
			rf, err := p.client.V1Refunds.Create(ctx, params)
			if err != nil {
				return payment.Charge{}, p.fail(ctx, "void", err)
			}
			recordRequestID(ctx, rf.LastResponse)
		}
		ch := toCharge(pi, key)
		ch.Status = payment.StatusVoided
		ch.Refunded = money.Money{Currency: ch.Amount.Currency}
		return ch, nil
	}
	params := &stripeapi.PaymentIntentCancelParams{}
	params.SetIdempotencyKey("void/" + pi.ID)
	out, err := p.client.V1PaymentIntents.Cancel(ctx, chargeID, params)
	if err != nil {
		return payment.Charge{}, p.fail(ctx, "void", err)
	}
	recordRequestID(ctx, out.LastResponse)
	ch := toCharge(out, key)
	ch.Status = payment.StatusVoided // stripe-mock answers with a fixture status
	return ch, nil
}

// Retrieve implements payment.Provider: the PaymentIntent as Stripe has it now.
func (p *Provider) Retrieve(ctx context.Context, chargeID string) (payment.Charge, error) {
	rp := &stripeapi.PaymentIntentRetrieveParams{}
	rp.AddExpand("latest_charge")
	pi, err := p.client.V1PaymentIntents.Retrieve(ctx, chargeID, rp)
	if err != nil {
		return payment.Charge{}, p.fail(ctx, "retrieve", err)
	}
	recordRequestID(ctx, pi.LastResponse)
	return toCharge(pi, pi.Metadata[MetadataKey]), nil
}

// Cancel implements payment.Provider: an intent that has not moved money is
// cancelled (one already cancelled is left so); one that succeeded is errs
// Conflict payment.CodeChargeNotCancelable.
func (p *Provider) Cancel(ctx context.Context, chargeID string) error {
	params := &stripeapi.PaymentIntentCancelParams{CancellationReason: stripeapi.String("abandoned")}
	params.SetIdempotencyKey("cancel/" + chargeID)
	pi, err := p.client.V1PaymentIntents.Cancel(ctx, chargeID, params)
	if err != nil {
		var se *stripeapi.Error
		if errors.As(err, &se) && se.Code == stripeapi.ErrorCodePaymentIntentUnexpectedState {
			// Already cancelled, or it succeeded meanwhile: ask which.
			ch, rerr := p.Retrieve(ctx, chargeID)
			switch {
			case rerr != nil:
				return rerr
			case ch.Status == payment.StatusVoided:
				return nil
			default:
				return errs.Coded(errs.Conflict, payment.CodeChargeNotCancelable, "a %s charge cannot be cancelled", ch.Status)
			}
		}
		return p.fail(ctx, "cancel", err)
	}
	recordRequestID(ctx, pi.LastResponse)
	return nil
}

// Capture implements payment.Provider: captures amount_to_capture of an
// intent in requires_capture, under key as its Idempotency-Key; Stripe
// releases the rest of the authorisation. An intent captured already (Stripe
// answers payment_intent_unexpected_state) is returned when it was captured
// for amount, and is errs Conflict payment.CodeChargeNotCapturable otherwise.
func (p *Provider) Capture(ctx context.Context, chargeID string, amount money.Money, key string) (payment.Charge, error) {
	if err := amount.ValidatePositive(); err != nil {
		return payment.Charge{}, errs.Coded(errs.Invalid, "invalid_amount", "a capture must be a positive amount").Wrap(err)
	}
	if key == "" {
		return payment.Charge{}, errs.Coded(errs.Invalid, "idempotency_key_required", "a capture needs an idempotency key")
	}
	params := &stripeapi.PaymentIntentCaptureParams{AmountToCapture: stripeapi.Int64(amount.Amount)}
	params.AddExpand("latest_charge")
	params.SetIdempotencyKey(key)
	pi, err := p.client.V1PaymentIntents.Capture(ctx, chargeID, params)
	if err != nil {
		var se *stripeapi.Error
		if errors.As(err, &se) && se.Code == stripeapi.ErrorCodePaymentIntentUnexpectedState {
			ch, rerr := p.Retrieve(ctx, chargeID)
			switch {
			case rerr != nil:
				return payment.Charge{}, rerr
			case ch.Status == payment.StatusSucceeded && ch.Amount == amount:
				return ch, nil
			default:
				return payment.Charge{}, errs.Coded(errs.Conflict, payment.CodeChargeNotCapturable, "a %s charge of %s cannot be captured for %s", ch.Status, ch.Amount, amount)
			}
		}
		return payment.Charge{}, p.fail(ctx, "capture", err)
	}
	recordRequestID(ctx, pi.LastResponse)
	ch := toCharge(pi, pi.Metadata[MetadataKey])
	if fromMock(pi.LastResponse) {
		ch.Status, ch.Amount = payment.StatusSucceeded, amount // the fixture does not follow the request
	}
	return ch, nil
}

// Refund implements payment.Provider: a Stripe refund of amount against the
// intent, under key as its Idempotency-Key.
func (p *Provider) Refund(ctx context.Context, chargeID string, amount money.Money, key string) (payment.Refund, error) {
	if err := amount.ValidatePositive(); err != nil {
		return payment.Refund{}, errs.Coded(errs.Invalid, "invalid_amount", "a refund must be a positive amount").Wrap(err)
	}
	if key == "" {
		return payment.Refund{}, errs.Coded(errs.Invalid, "idempotency_key_required", "a refund needs an idempotency key")
	}
	params := &stripeapi.RefundCreateParams{
		PaymentIntent: stripeapi.String(chargeID),
		Amount:        stripeapi.Int64(amount.Amount),
	}
	params.SetIdempotencyKey(key)
	rf, err := p.client.V1Refunds.Create(ctx, params)
	if err != nil {
		return payment.Refund{}, p.fail(ctx, "refund", err)
	}
	recordRequestID(ctx, rf.LastResponse)
	cur := strings.ToUpper(string(rf.Currency))
	if cur == "" {
		cur = amount.Currency
	}
	return payment.Refund{ID: rf.ID, ChargeID: chargeID, Amount: money.Money{Amount: rf.Amount, Currency: cur}}, nil
}

// toCharge converts an intent. After a confirmed create, Stripe answers a
// decline with an error, so a 200 carries succeeded (or, rarely for cards,
// processing, which settles as succeeded or as a later dispute/failure event)
// or requires_action: the customer must authenticate (3-D Secure), and the
// charge carries the intent's client secret and next action. A failed
// authentication leaves the intent in requires_payment_method with a
// last_payment_error, a decline.
// stripe-mock answers every request with fixture data whose status does not
// follow the request; its responses are recognised by its own header and taken
// as a successful charge so a checkout can run end to end against it.
func toCharge(pi *stripeapi.PaymentIntent, key string) payment.Charge {
	ch := payment.Charge{
		ID:             pi.ID,
		IdempotencyKey: key,
		Amount:         money.Money{Amount: pi.Amount, Currency: strings.ToUpper(string(pi.Currency))},
		CreatedAt:      time.Unix(pi.Created, 0).UTC(),
	}
	ch.Refunded = money.Money{Currency: ch.Amount.Currency}
	switch pi.Status {
	case stripeapi.PaymentIntentStatusSucceeded, stripeapi.PaymentIntentStatusProcessing:
		ch.Status = payment.StatusSucceeded
		if pi.AmountReceived > 0 && pi.AmountReceived < pi.Amount {
			ch.Amount.Amount = pi.AmountReceived // captured less than authorised
		}
		if c := pi.LatestCharge; c != nil && c.AmountRefunded > 0 {
			ch.Refunded.Amount = c.AmountRefunded
			ch.Status = payment.StatusPartiallyRefunded
			if c.Refunded || c.AmountRefunded >= pi.Amount {
				ch.Status = payment.StatusRefunded
			}
		}
	case stripeapi.PaymentIntentStatusCanceled:
		ch.Status = payment.StatusVoided
	case stripeapi.PaymentIntentStatusRequiresCapture:
		ch.Status = payment.StatusAuthorized
	case stripeapi.PaymentIntentStatusRequiresAction:
		ch.Status = payment.StatusRequiresAction
		ch.ClientSecret = pi.ClientSecret
		if pi.NextAction != nil {
			if b, err := json.Marshal(pi.NextAction); err == nil {
				ch.NextAction = b
			}
		}
	default:
		if fromMock(pi.LastResponse) {
			ch.Status = payment.StatusSucceeded
			return ch
		}
		ch.Status = payment.StatusDeclined
		ch.DeclineCode = "generic_decline"
		if e := pi.LastPaymentError; e != nil {
			if c := declineCode(e); c != "" {
				ch.DeclineCode = c
			}
		}
	}
	return ch
}

func fromMock(r *stripeapi.APIResponse) bool {
	return r != nil && r.Header.Get(mockHeader) != ""
}

// recordRequestID puts Stripe's request id on the caller's current span (the
// payment service's payment.gateway_call span).
func recordRequestID(ctx context.Context, r *stripeapi.APIResponse) {
	if r == nil || r.RequestID == "" {
		return
	}
	trace.SpanFromContext(ctx).SetAttributes(RequestIDAttribute.String(r.RequestID))
}

// fail records the request id of a failed call and maps its error.
func (p *Provider) fail(ctx context.Context, op string, err error) error {
	var se *stripeapi.Error
	if errors.As(err, &se) && se.RequestID != "" {
		trace.SpanFromContext(ctx).SetAttributes(RequestIDAttribute.String(se.RequestID))
	}
	return mapError(ctx, op, err)
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("stripe: no secret key configured")
	case strings.TrimSpace(key) != key || strings.ContainsAny(key, " \t\r\n"):
		return errors.New("stripe: the secret key contains whitespace")
	case !strings.HasPrefix(key, "sk_") && !strings.HasPrefix(key, "rk_"):
		return fmt.Errorf("stripe: the secret key must be a secret (sk_…) or restricted (rk_…) key")
	}
	return nil
}
