package faults_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/faults"
)

var (
	charge  = faults.Point{Name: "payment.charge", Default: faults.Settings{DeclineCode: "generic_decline"}, Delay: true, Decline: true}
	reserve = faults.Point{Name: "inventory.reserve", Delay: true, MaxDelayMS: 1000}
	fulfil  = faults.Point{Name: "loyalty.fulfillment", Fail: true, Delay: true, Default: faults.Settings{DelayMS: 5}, DefaultSource: "program"}
)

func newStore(d *db.DB, ttl time.Duration) *faults.Store {
	s := faults.NewStore(faults.Config{DB: d, TTL: ttl})
	s.Register(charge, reserve, fulfil)
	return s
}

func TestSetGetAndDefaults(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Scope: auth.ScopeAdmin, Subject: "ops"})
		s := newStore(d, time.Hour)
		got, err := s.Get(ctx, "loyalty.fulfillment")
		if err != nil || got.Source != "program" || got.DelayMS != 5 || got.Fail || !got.UpdatedAt.IsZero() {
			t.Fatalf("default = %+v, %v; want the program's delay", got, err)
		}
		if got, _ := s.Get(ctx, "payment.charge"); got.Source != faults.SourceDefault || got.DeclineCode != "generic_decline" {
			t.Errorf("payment default = %+v", got)
		}
		set, err := s.Set(ctx, "payment.charge", faults.Settings{DelayMS: 20, DeclineRatePercent: 50})
		if err != nil {
			t.Fatal(err)
		}
		if set.Source != faults.SourceAdmin || set.UpdatedBy != "admin:ops" || set.DelayMS != 20 || set.DeclineRatePercent != 50 ||
			set.DeclineCode != "generic_decline" || set.UpdatedAt.IsZero() {
			t.Errorf("after Set = %+v; want the admin's setting with the default decline code", set)
		}
		// The setting process sees its own change at once, cache or not.
		if got, _ := s.Get(ctx, "payment.charge"); got.DelayMS != 20 {
			t.Errorf("Get after Set = %+v", got)
		}
		all, err := s.List(ctx)
		if err != nil || len(all) != 3 || all[0].Point != "inventory.reserve" || all[2].Point != "payment.charge" {
			t.Errorf("List = %+v, %v; want all three by name", all, err)
		}
		if _, err := s.Get(ctx, "nope"); errs.CodeOf(err) != "fault_point_not_found" {
			t.Errorf("unknown point: %v", err)
		}
	})
}

// TestReplicasSeeChangeAfterTTL: a replica's cached setting is reused within
// the TTL and read again after it.
func TestReplicasSeeChangeAfterTTL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		setter, cached, fresh := newStore(d, time.Hour), newStore(d, time.Hour), newStore(d, time.Nanosecond)
		for _, s := range []*faults.Store{cached, fresh} {
			if _, err := s.Get(ctx, "inventory.reserve"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := setter.Set(ctx, "inventory.reserve", faults.Settings{DelayMS: 300}); err != nil {
			t.Fatal(err)
		}
		if got, _ := cached.Get(ctx, "inventory.reserve"); got.DelayMS != 0 {
			t.Errorf("within the TTL: %+v, want the cached setting", got)
		}
		if got, _ := fresh.Get(ctx, "inventory.reserve"); got.DelayMS != 300 {
			t.Errorf("past the TTL: %+v, want the new setting", got)
		}
		if got, _ := cached.Read(ctx, "inventory.reserve"); got.DelayMS != 300 {
			t.Errorf("Read: %+v, want the database's setting", got)
		}
	})
}

func TestSetValidates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s := newStore(d, time.Hour)
		for _, tc := range []struct {
			point, field string
			v            faults.Settings
		}{
			{"inventory.reserve", "fail", faults.Settings{Fail: true}},
			{"inventory.reserve", "delay_ms", faults.Settings{DelayMS: 1001}},
			{"inventory.reserve", "decline_rate_percent", faults.Settings{DeclineRatePercent: 5}},
			{"payment.charge", "delay_ms", faults.Settings{DelayMS: -1}},
			{"payment.charge", "decline_rate_percent", faults.Settings{DeclineRatePercent: 101}},
			{"payment.charge", "decline_code", faults.Settings{DeclineCode: "two words"}},
		} {
			_, err := s.Set(context.Background(), tc.point, tc.v)
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Details["field"] != tc.field {
				t.Errorf("%s %+v: %v, want invalid %s", tc.point, tc.v, err, tc.field)
			}
		}
	})
}

func TestSleepRecordsEventAndHonoursContext(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	ctx, span := tp.Tracer("test").Start(context.Background(), "work")
	if err := faults.Sleep(ctx, "inventory.reserve", 0); err != nil {
		t.Fatal(err)
	}
	if err := faults.Sleep(ctx, "inventory.reserve", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := faults.Sleep(cancelled, "payment.charge", time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with a cancelled ctx = %v, want context.Canceled at once", err)
	}
	if err := faults.Wait(cancelled, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled ctx = %v", err)
	}
	span.End()
	ev := spans.Ended()[0].Events()
	if len(ev) != 2 || ev[0].Name != "fault_injected" {
		t.Fatalf("events %+v, want one fault_injected per positive Sleep", ev)
	}
	attrs := map[string]string{}
	for _, kv := range ev[0].Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["fault.delay_ms"] != "1" || attrs["fault.point"] != "inventory.reserve" {
		t.Errorf("event attributes %v", attrs)
	}
}

// TestMigrationCopiesOldSettings runs the 00043 migration's down and up
// halves over settings in the three old tables: every setting an admin made
// survives, and the rows nobody set stay defaults.
func TestMigrationCopiesOldSettings(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		src, err := os.ReadFile(filepath.Join("..", "db", "migrations", string(d.Engine()), "00043_fault_points.sql"))
		if err != nil {
			t.Fatal(err)
		}
		up, down, _ := strings.Cut(string(src), "-- +goose Down")
		exec(t, d, down)
		exec(t, d, `INSERT INTO loyalty_faults (target, fail, delay_ms, actor, updated_at) VALUES ('fulfillment', 1, 7, 'admin:a', 1000);
			INSERT INTO loyalty_faults (target, fail, delay_ms, actor, updated_at) VALUES ('partner:meridian-air', 0, 9, 'admin:b', 2000);
			UPDATE payment_faults SET latency_ms = 250, decline_rate_percent = 10, decline_code = 'lost_card', updated_at = 3000`)
		exec(t, d, up)

		s := faults.NewStore(faults.Config{DB: d})
		s.Register(charge, reserve, fulfil, faults.Point{Name: "loyalty.partner.meridian-air", Fail: true, Delay: true})
		want := map[string]faults.Setting{
			"loyalty.fulfillment":          {Settings: faults.Settings{Fail: true, DelayMS: 7}, Source: "admin", UpdatedBy: "admin:a"},
			"loyalty.partner.meridian-air": {Settings: faults.Settings{DelayMS: 9}, Source: "admin", UpdatedBy: "admin:b"},
			"payment.charge":               {Settings: faults.Settings{DelayMS: 250, DeclineRatePercent: 10, DeclineCode: "lost_card"}, Source: "admin"},
			"inventory.reserve":            {Source: faults.SourceDefault},
		}
		for name, w := range want {
			got, err := s.Read(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Settings != w.Settings || got.Source != w.Source || got.UpdatedBy != w.UpdatedBy {
				t.Errorf("%s = %+v, want %+v", name, got, w)
			}
		}
	})
}

// exec runs a script of statements separated by ";", without its comments.
func exec(t *testing.T, d *db.DB, script string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(script, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	for _, stmt := range strings.Split(strings.Join(lines, "\n"), ";") {
		q := strings.TrimSpace(stmt)
		if q == "" {
			continue
		}
		if err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, q)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
