package checkout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestRetryTakesOverCrashedCheckout stops the saga after each step as if its
// process died (nothing compensated, the lease no longer renewed), lets one
// lease pass and retries with the same Idempotency-Key: the retry takes the
// checkout over and finishes it — 201 with the order, one charge, one order —
// where before it answered checkout_in_progress until the recovery pass had
// undone it (checkout_aborted).
func TestRetryTakesOverCrashedCheckout(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "TAKE-1", 1500, 100)
		member := "mem_take"
		f.loyalty.setBalance(member, 10_000)
		tok := f.token(t, auth.ScopeMember, member)
		points := append([]string{}, checkout.Steps...)
		if o.local {
			points = append(points, checkout.AfterCommitBeforePayment, checkout.AfterCommitComplete)
		}
		for _, point := range points {
			t.Run(point, func(t *testing.T) {
				f.setFail(func(s string) error {
					if s == point {
						return errors.New("injected crash")
					}
					return nil
				})
				key := "take-" + point
				id := checkout.ID((&auth.Principal{Scope: auth.ScopeMember, Subject: member}).Actor(), key)
				body := checkoutBody(f.cart(t, member, map[string]int64{p.ID: 2}), "tok_visa", "m@example.com", 500)
				if r := f.do(t, "POST", "/v1/checkout", tok, key, body); r.status != 503 && point != checkout.AfterCommitComplete {
					t.Fatalf("crash response: %d %s", r.status, r.raw)
				}
				f.setFail(nil)
				f.clock.Advance(checkout.DefaultLease + time.Second) // the crashed process's lease runs out
				again := f.do(t, "POST", "/v1/checkout", tok, key, body)
				if again.status != 201 || again.str("status") != "confirmed" || again.str("order_id") == "" {
					t.Fatalf("retry after the crash: %d %s", again.status, again.raw)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM payment_charges WHERE idempotency_key = $1`, id); n != 1 {
					t.Errorf("%d charges for the checkout, want 1", n)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM orders WHERE checkout_id = $1 AND status = 'confirmed'`, id); n != 1 {
					t.Errorf("%d confirmed orders for the checkout, want 1", n)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation' AND reference = $1`, again.str("order_id")); n != 1 {
					t.Errorf("%d confirmations queued, want 1", n)
				}
				f.assertConsistent(t)
				if replay := f.do(t, "POST", "/v1/checkout", tok, key, body); replay.status != 201 || replay.str("order_id") != again.str("order_id") {
					t.Errorf("second retry: %d %s", replay.status, replay.raw)
				}
			})
		}
		orders := f.count(t, `SELECT COUNT(*) FROM orders WHERE status = 'confirmed'`)
		// Each order: 2 × 15.00 − 5.00 in points = 25.00 charged → 25 points earned.
		if want := 10_000 - orders*500 + orders*25; f.loyalty.pointsEarned(member) != want {
			t.Errorf("points balance + pending = %d, want %d (%d orders)", f.loyalty.pointsEarned(member), want, orders)
		}
	})
}

// TestInProgressIsNotTheKeysAnswer retries a checkout whose owner still
// holds its lease (a live but stalled process: its clock never lets the lease
// run out): after takeOver's bounded wait the retry answers 409
// checkout_in_progress with Retry-After. That answer must not become the
// Idempotency-Key's: once the lease runs out, the next retry takes the
// checkout over and answers 201 — before, it replayed the stored 409 for as
// long as the key was kept.
func TestInProgressIsNotTheKeysAnswer(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				o := m.opts
				o.lease = 300 * time.Millisecond // the retry waits one lease and 2 s
				f := newFixture(t, d, o)
				p := f.product(t, "STALL-1", 1500, 10)
				f.setFail(func(s string) error {
					if s == checkout.StepProcessingPayment {
						return errors.New("stalled after the charge")
					}
					return nil
				})
				body := checkoutBody(f.cart(t, "", map[string]int64{p.ID: 1}), "tok_visa", "g@example.com", 0)
				if r := f.do(t, "POST", "/v1/checkout", "", "stalled", body); r.status != 503 {
					t.Fatalf("first attempt: %d %s", r.status, r.raw)
				}
				f.setFail(nil)
				// The fake clock stands still: the first attempt's lease still runs.
				r, header := f.doHeader(t, "POST", "/v1/checkout", "", "stalled", body)
				if r.status != 409 || r.str("code") != checkout.CodeCheckoutInProgress || header.Get("Retry-After") == "" {
					t.Fatalf("retry while the lease runs: %d %s (Retry-After %q)", r.status, r.raw, header.Get("Retry-After"))
				}
				f.clock.Advance(time.Second) // the lease runs out
				again := f.do(t, "POST", "/v1/checkout", "", "stalled", body)
				if again.status != 201 || again.str("status") != "confirmed" {
					t.Fatalf("retry after the lease ran out: %d %s", again.status, again.raw)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM payment_charges`); n != 1 {
					t.Errorf("%d charges, want 1", n)
				}
				if n := f.count(t, `SELECT COUNT(*) FROM orders`); n != 1 {
					t.Errorf("%d orders, want 1", n)
				}
				f.assertConsistent(t)
			})
		})
	}
}

// TestVerifyTellsInFlightFromViolation runs Verify while a saga is between
// its charge and its order: the charge without an order belongs to a
// checkout whose owner holds its lease, so it is reported in flight, not as a
// violation; once its lease and the retry window have passed without the
// checkout settling, it is a violation.
func TestVerifyTellsInFlightFromViolation(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		f := newFixture(t, d, o)
		p := f.product(t, "FLIGHT-1", 1500, 100)
		tok := f.token(t, auth.ScopeMember, "mem_flight")
		var problems, inFlight []string
		var settlesBy time.Time
		f.setFail(func(s string) error {
			if s != checkout.StepProcessingPayment {
				return nil
			}
			var err error
			if problems, err = f.checkout.Verify(context.Background(), 0); err != nil {
				t.Error(err)
			}
			if inFlight, settlesBy, err = f.checkout.InFlight(context.Background(), 0); err != nil {
				t.Error(err)
			}
			return errors.New("injected crash")
		})
		body := checkoutBody(f.cart(t, "mem_flight", map[string]int64{p.ID: 1}), "tok_visa", "", 0)
		if r := f.do(t, "POST", "/v1/checkout", tok, "flight", body); r.status != 503 {
			t.Fatalf("crash response: %d %s", r.status, r.raw)
		}
		f.setFail(nil)
		if len(problems) != 0 {
			t.Errorf("work in flight reported as violations: %q", problems)
		}
		if len(inFlight) != 1 || !strings.Contains(inFlight[0], "in flight at step holding_points, settles by") || settlesBy.IsZero() {
			t.Errorf("in flight = %q (settles by %v)", inFlight, settlesBy)
		}
		// Its owner is gone and nobody retries: past the lease and the retry
		// window it is a violation until the recovery pass settles it.
		f.clock.Advance(2*checkout.DefaultLease + time.Second)
		if problems, _ := f.checkout.Verify(context.Background(), 0); len(problems) == 0 {
			t.Error("a checkout abandoned past its lease is not reported")
		}
		if rep, err := f.checkout.Recover(context.Background()); err != nil || rep.Completed != 1 {
			t.Fatalf("recover = %+v, %v", rep, err)
		}
		f.assertConsistent(t)
	})
}

// TestVerifyReservationOfCheckoutInFlight: a checkout's reservation can run
// out while the checkout is still in flight (found by scripts/crashloop.sh,
// whose reservation TTL equals the lease: verify right after a restart saw the
// reservation of a killed checkout "still held past its expiry" before the
// reaper had run, while the checkout itself was reported in flight). It is the
// checkout's effect and settles with it, so it is in flight, not a violation;
// once the checkout's lease and retry window have passed, it is a violation
// until the reaper or recovery releases it.
func TestVerifyReservationOfCheckoutInFlight(t *testing.T) {
	eachMode(t, func(t *testing.T, d *db.DB, o fixtureOpts) {
		o.reservationTTL = checkout.DefaultLease / 2
		f := newFixture(t, d, o)
		p := f.product(t, "RESV-1", 1500, 100)
		tok := f.token(t, auth.ScopeMember, "mem_resv")
		f.setFail(func(s string) error {
			if s == checkout.StepProcessingPayment {
				return errors.New("injected crash")
			}
			return nil
		})
		body := checkoutBody(f.cart(t, "mem_resv", map[string]int64{p.ID: 1}), "tok_visa", "", 0)
		if r := f.do(t, "POST", "/v1/checkout", tok, "resv", body); r.status != 503 {
			t.Fatalf("crash response: %d %s", r.status, r.raw)
		}
		f.setFail(nil)
		if n := f.count(t, `SELECT COUNT(*) FROM reservations WHERE state = 'held'`); n != 1 {
			t.Fatalf("%d reservations held after the crash, want 1", n)
		}
		// Past the reservation's expiry, within the lease and retry window.
		f.clock.Advance(checkout.DefaultLease/2 + time.Second)
		problems, err := f.checkout.Verify(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) != 0 {
			t.Errorf("the reservation of a checkout in flight reported as a violation: %q", problems)
		}
		inFlight, _, err := f.checkout.InFlight(context.Background(), 0)
		if err != nil || len(inFlight) != 1 {
			t.Errorf("in flight = %q, %v", inFlight, err)
		}
		// The checkout is no longer in flight: its held reservation is a
		// violation again.
		f.clock.Advance(2 * checkout.DefaultLease)
		problems, err = f.checkout.Verify(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "still held past its expiry") }) {
			t.Errorf("a reservation held past its expiry after its checkout settled is not reported: %q", problems)
		}
		if _, err := f.checkout.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.assertConsistent(t)
	})
}
