package webhooks

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Subscription states.
const (
	StateActive   = "active"
	StatePaused   = "paused"
	StateDisabled = "disabled" // by the worker, after DisableAfter failures in a row
)

// Problem codes.
const (
	CodeSubscriptionNotFound = "webhook_subscription_not_found"
	CodeInvalidURL           = "invalid_webhook_url"
	CodeInvalidEventTypes    = "invalid_event_types"
	CodeInvalidState         = "invalid_subscription_state"
	CodeEventNotFound        = "event_not_found"
	CodeInvalidReplay        = "invalid_replay"
)

// Subscription is a webhook subscription, without its secret.
type Subscription struct {
	ID                  string    `json:"id"`
	URL                 string    `json:"url"`
	EventTypes          []string  `json:"event_types"`
	Description         string    `json:"description"`
	State               string    `json:"state"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	DisabledReason      string    `json:"disabled_reason,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// NewSubscription is the input of Create.
type NewSubscription struct {
	URL         string
	EventTypes  []string
	Description string
}

// Patch changes a subscription; nil fields stay as they are.
type Patch struct {
	URL         *string
	EventTypes  []string // nil: unchanged
	Description *string
	// State "paused" pauses deliveries, "active" resumes them (also after
	// the worker disabled the subscription).
	State *string
}

const (
	maxURLLen         = 2048
	maxDescriptionLen = 500
)

// validateURL checks a subscription's URL: absolute http(s) with a host; a
// literal address or "localhost" must be public unless AllowPrivate.
func (s *Service) validateURL(raw string) error {
	bad := func(why string) error {
		return errs.Coded(errs.Unprocessable, CodeInvalidURL, "url %s", why).With("field", "url")
	}
	if raw == "" || len(raw) > maxURLLen {
		return bad(fmt.Sprintf("is required and at most %d bytes", maxURLLen))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return bad("must be an absolute http or https URL without credentials or fragment")
	}
	if s.cfg.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return bad("must not name this host")
	}
	if a, err := netip.ParseAddr(host); err == nil && !Public(a) {
		return bad("must be a public address")
	}
	return nil
}

func validateTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, errs.Coded(errs.Unprocessable, CodeInvalidEventTypes, "event_types must name at least one event type").With("field", "event_types")
	}
	out := make([]string, 0, len(types))
	for _, t := range types {
		if !events.IsType(t) {
			return nil, errs.Coded(errs.Unprocessable, CodeInvalidEventTypes, "%q is not an event type; use one of %s", t,
				strings.Join(events.Types, ", ")).With("field", "event_types")
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

func validateDescription(d string) error {
	if len(d) > maxDescriptionLen {
		return errs.Coded(errs.Unprocessable, "invalid_description", "description is at most %d bytes", maxDescriptionLen).With("field", "description")
	}
	return nil
}

// newSecret returns a Standard Webhooks secret: "whsec_" and 32 random
// bytes in base64.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

func newID(prefix string) string { return prefix + strings.ReplaceAll(uuid.NewString(), "-", "") }

// Create subscribes url to event types and returns the subscription with
// its signing secret, which is never shown again.
func (s *Service) Create(ctx context.Context, n NewSubscription) (Subscription, string, error) {
	n.URL = strings.TrimSpace(n.URL)
	if err := s.validateURL(n.URL); err != nil {
		return Subscription{}, "", err
	}
	types, err := validateTypes(n.EventTypes)
	if err != nil {
		return Subscription{}, "", err
	}
	if err := validateDescription(n.Description); err != nil {
		return Subscription{}, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return Subscription{}, "", fmt.Errorf("webhooks: secret: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	sub := Subscription{ID: newID("whs_"), URL: n.URL, EventTypes: types, Description: n.Description, State: StateActive,
		CreatedAt: now, UpdatedAt: now}
	typesJSON, _ := json.Marshal(types)
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_subscriptions (id, url, event_types, secret, description, state, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`, sub.ID, sub.URL, string(typesJSON), secret, sub.Description, sub.State, db.Micros(now))
		return err
	})
	if err != nil {
		return Subscription{}, "", fmt.Errorf("webhooks: create: %w", err)
	}
	return sub, secret, nil
}

const subColumns = `id, url, event_types, description, state, failures, disabled_reason, created_at, updated_at`

func scanSub(r interface{ Scan(...any) error }) (Subscription, error) {
	var (
		sub        Subscription
		types      string
		created, u int64
	)
	if err := r.Scan(&sub.ID, &sub.URL, &types, &sub.Description, &sub.State, &sub.ConsecutiveFailures, &sub.DisabledReason, &created, &u); err != nil {
		return Subscription{}, err
	}
	if err := json.Unmarshal([]byte(types), &sub.EventTypes); err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: event types: %w", sub.ID, err)
	}
	sub.CreatedAt, sub.UpdatedAt = db.FromMicros(created), db.FromMicros(u)
	return sub, nil
}

func notFound(id string) error {
	return errs.Coded(errs.NotFound, CodeSubscriptionNotFound, "no webhook subscription %q", id).With("subscription_id", id)
}

// Get returns a subscription.
func (s *Service) Get(ctx context.Context, id string) (Subscription, error) {
	sub, err := scanSub(s.db.Read().QueryRowContext(ctx, `SELECT `+subColumns+` FROM webhook_subscriptions WHERE id = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Subscription{}, notFound(id)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("webhooks: get: %w", err)
	}
	return sub, nil
}

// List returns every subscription, oldest first.
func (s *Service) List(ctx context.Context) ([]Subscription, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+subColumns+` FROM webhook_subscriptions WHERE deleted_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	defer rows.Close()
	out := []Subscription{}
	for rows.Next() {
		sub, err := scanSub(rows)
		if err != nil {
			return nil, fmt.Errorf("webhooks: list: %w", err)
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}

// Update applies p to subscription id. Resuming (state active) also clears
// the failure count of a disabled subscription.
func (s *Service) Update(ctx context.Context, id string, p Patch) (Subscription, error) {
	if p.URL != nil {
		*p.URL = strings.TrimSpace(*p.URL)
		if err := s.validateURL(*p.URL); err != nil {
			return Subscription{}, err
		}
	}
	if p.EventTypes != nil {
		types, err := validateTypes(p.EventTypes)
		if err != nil {
			return Subscription{}, err
		}
		p.EventTypes = types
	}
	if p.Description != nil {
		if err := validateDescription(*p.Description); err != nil {
			return Subscription{}, err
		}
	}
	if p.State != nil && *p.State != StateActive && *p.State != StatePaused {
		return Subscription{}, errs.Coded(errs.Unprocessable, CodeInvalidState, "state must be %q or %q", StateActive, StatePaused).With("field", "state")
	}
	var out Subscription
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		sub, err := scanSub(tx.QueryRowContext(ctx, `SELECT `+subColumns+` FROM webhook_subscriptions WHERE id = $1 AND deleted_at IS NULL`+tx.ForUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		if p.URL != nil {
			sub.URL = *p.URL
		}
		if p.EventTypes != nil {
			sub.EventTypes = p.EventTypes
		}
		if p.Description != nil {
			sub.Description = *p.Description
		}
		if p.State != nil && *p.State != sub.State {
			sub.State = *p.State
			if sub.State == StateActive {
				sub.ConsecutiveFailures, sub.DisabledReason = 0, ""
			}
		}
		sub.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
		typesJSON, _ := json.Marshal(sub.EventTypes)
		_, err = tx.ExecContext(ctx, `UPDATE webhook_subscriptions SET url = $2, event_types = $3, description = $4, state = $5,
			failures = $6, disabled_reason = $7, updated_at = $8 WHERE id = $1`,
			id, sub.URL, string(typesJSON), sub.Description, sub.State, sub.ConsecutiveFailures, sub.DisabledReason, db.Micros(sub.UpdatedAt))
		out = sub
		return err
	})
	if err != nil {
		if _, ok := errs.As(err); ok {
			return Subscription{}, err
		}
		return Subscription{}, fmt.Errorf("webhooks: update: %w", err)
	}
	return out, nil
}

// Delete removes a subscription; its pending deliveries are not sent. The
// row stays (deleted_at) so its delivery log keeps its name.
func (s *Service) Delete(ctx context.Context, id string) error {
	var n int64
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		now := db.Micros(s.now())
		res, err := tx.ExecContext(ctx, `UPDATE webhook_subscriptions SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL`, id, now)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		if n == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'cancelled', finished_at = $2 WHERE subscription_id = $1 AND state = 'pending'`, id, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("webhooks: delete: %w", err)
	}
	if n == 0 {
		return notFound(id)
	}
	return nil
}
