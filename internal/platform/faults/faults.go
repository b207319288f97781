// Package faults is Godwit's one fault-injection mechanism: named fault points
// (the payment simulator's charge, the inventory's reservation, the loyalty
// fulfilment provider and partner simulators) whose settings an admin changes
// at run time, stored in one table so every replica sees a change within a
// second.
//
// A service registers its points with a Store, reads a point's setting where
// the fault applies (cached), and sleeps through Sleep, which records the
// injected delay on the current span.
package faults

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/defaults"
)

// Settings are what a fault point can be told to do. A point uses only the
// knobs it declares (Point.Fail, Point.Delay, Point.Decline).
type Settings struct {
	Fail               bool   // fail every call
	DelayMS            int64  // wait this long before answering
	DeclineRatePercent int64  // decline this share of calls (0–100)
	DeclineCode        string // the code of an injected decline
}

// Delay is DelayMS as a duration.
func (s Settings) Delay() time.Duration { return time.Duration(s.DelayMS) * time.Millisecond }

// Sources of a Setting.
const (
	SourceDefault = "default" // no admin setting; the point's default
	SourceAdmin   = "admin"   // set at run time through the API, for every replica
)

// Point is a named place where a fault can be injected.
type Point struct {
	Name    string // e.g. "payment.charge"; lower case, dots
	Summary string // what the point slows down or fails
	// Default applies until an admin sets the point; DefaultSource names
	// where it came from ("program" for the loyalty program file; empty
	// means SourceDefault).
	Default       Settings
	DefaultSource string
	// The knobs the point honours; setting any other is refused.
	Fail, Delay, Decline bool
	// MaxDelayMS bounds an admin's delay; default 60000 (longer would only
	// hold requests).
	MaxDelayMS int64
}

// Setting is a point's effective setting.
type Setting struct {
	Point string
	Settings
	Source    string
	UpdatedBy string
	UpdatedAt time.Time // zero for a default
}

// DefaultTTL is how long Get reuses a point's setting: a change reaches every
// replica within it.
const DefaultTTL = time.Second

// Config is what a Store needs.
type Config struct {
	DB  *db.DB
	Now func() time.Time // stamps updates; nil: time.Now
	TTL time.Duration    // Get's cache; default DefaultTTL
}

// Store reads and writes fault settings. It is safe for concurrent use; one
// Store serves every service of a process.
type Store struct {
	db  *db.DB
	now func() time.Time
	ttl time.Duration

	mu     sync.Mutex
	points map[string]Point
	cache  map[string]cached
}

type cached struct {
	setting Setting
	fetched time.Time
}

// NewStore returns a Store with no points.
func NewStore(cfg Config) *Store {
	defaults.Fill(defaults.Fields{Now: &cfg.Now})
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	return &Store{db: cfg.DB, now: cfg.Now, ttl: cfg.TTL, points: map[string]Point{}, cache: map[string]cached{}}
}

// Register adds points (replacing any of the same name).
func (s *Store) Register(points ...Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range points {
		if p.MaxDelayMS <= 0 {
			p.MaxDelayMS = 60_000
		}
		if p.DefaultSource == "" {
			p.DefaultSource = SourceDefault
		}
		s.points[p.Name] = p
		delete(s.cache, p.Name)
	}
}

// Points lists the registered points by name.
func (s *Store) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Point, 0, len(s.points))
	for _, p := range s.points {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Store) point(name string) (Point, error) {
	s.mu.Lock()
	p, ok := s.points[name]
	s.mu.Unlock()
	if !ok {
		return Point{}, errs.Coded(errs.NotFound, "fault_point_not_found", "no fault point %q in this process", name).With("point", name)
	}
	return p, nil
}

// Get returns a point's setting, at most the Store's TTL old: it is read
// where the fault applies, on every call.
func (s *Store) Get(ctx context.Context, name string) (Setting, error) {
	s.mu.Lock()
	c, ok := s.cache[name]
	s.mu.Unlock()
	if ok && time.Since(c.fetched) < s.ttl {
		return c.setting, nil
	}
	return s.Read(ctx, name)
}

// Read returns a point's setting from the database (and refreshes the cache).
func (s *Store) Read(ctx context.Context, name string) (Setting, error) {
	p, err := s.point(name)
	if err != nil {
		return Setting{}, err
	}
	var (
		fail, updated int64
		out           = Setting{Point: name, Source: SourceAdmin}
	)
	err = s.db.Read().QueryRowContext(ctx, `SELECT fail, delay_ms, decline_rate_percent, decline_code, actor, updated_at FROM fault_points WHERE point = $1`, name).
		Scan(&fail, &out.DelayMS, &out.DeclineRatePercent, &out.DeclineCode, &out.UpdatedBy, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		out = Setting{Point: name, Settings: p.Default, Source: p.DefaultSource}
	case err != nil:
		return Setting{}, fmt.Errorf("faults: read %s: %w", name, err)
	default:
		out.Fail, out.UpdatedAt = fail == 1, db.FromMicros(updated)
	}
	s.mu.Lock()
	s.cache[name] = cached{setting: out, fetched: time.Now()}
	s.mu.Unlock()
	return out, nil
}

// List returns every registered point's setting, by name.
func (s *Store) List(ctx context.Context) ([]Setting, error) {
	var out []Setting
	for _, p := range s.Points() {
		st, err := s.Read(ctx, p.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Set stores an admin setting for a point, for every replica, and returns the
// effective setting. An empty decline code takes the point's default.
func (s *Store) Set(ctx context.Context, name string, v Settings) (Setting, error) {
	p, err := s.point(name)
	if err != nil {
		return Setting{}, err
	}
	if v.DeclineCode == "" {
		v.DeclineCode = p.Default.DeclineCode
	}
	if err := p.validate(v); err != nil {
		return Setting{}, err
	}
	fail := int64(0)
	if v.Fail {
		fail = 1
	}
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO fault_points (point, fail, delay_ms, decline_rate_percent, decline_code, actor, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (point) DO UPDATE SET fail = excluded.fail, delay_ms = excluded.delay_ms, decline_rate_percent = excluded.decline_rate_percent,
				decline_code = excluded.decline_code, actor = excluded.actor, updated_at = excluded.updated_at`,
			name, fail, v.DelayMS, v.DeclineRatePercent, v.DeclineCode, auth.FromContext(ctx).Actor(), db.Micros(s.now().UTC()))
		return err
	})
	if err != nil {
		return Setting{}, fmt.Errorf("faults: set %s: %w", name, err)
	}
	return s.Read(ctx, name)
}

func (p Point) validate(v Settings) error {
	invalid := func(field, format string, args ...any) error {
		return errs.Coded(errs.Invalid, "invalid_field", format, args...).With("field", field)
	}
	switch {
	case v.Fail && !p.Fail:
		return invalid("fail", "fault point %s cannot be made to fail", p.Name)
	case v.DelayMS != 0 && !p.Delay:
		return invalid("delay_ms", "fault point %s cannot be delayed", p.Name)
	case v.DelayMS < 0 || v.DelayMS > p.MaxDelayMS:
		return invalid("delay_ms", "delay_ms must be between 0 and %d", p.MaxDelayMS)
	case !p.Decline && (v.DeclineRatePercent != 0 || v.DeclineCode != p.Default.DeclineCode):
		return invalid("decline_rate_percent", "fault point %s does not decline", p.Name)
	case v.DeclineRatePercent < 0 || v.DeclineRatePercent > 100:
		return invalid("decline_rate_percent", "decline_rate_percent must be between 0 and 100")
	case len(v.DeclineCode) > 64 || strings.ContainsAny(v.DeclineCode, " \t\r\n"):
		return invalid("decline_code", "decline_code must be a short code such as generic_decline")
	}
	return nil
}

// Sleep waits d for the fault point named point, or until ctx is done (then
// it returns ctx's error). A positive delay is recorded on ctx's span as a
// fault_injected event, so a trace shows the slowness was injected.
func Sleep(ctx context.Context, point string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	trace.SpanFromContext(ctx).AddEvent("fault_injected", trace.WithAttributes(
		attribute.Int64("fault.delay_ms", d.Milliseconds()),
		attribute.String("fault.point", point),
	))
	return Wait(ctx, d)
}

// Wait waits d or until ctx is done (then it returns ctx's error); unlike
// Sleep it records nothing, for a simulator's deliberate slowness that is
// not a fault setting (the payment simulator's tok_slow).
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
