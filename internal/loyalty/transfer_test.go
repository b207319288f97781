package loyalty_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func TestPartnerTransfers(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.fund(t, "m", 10_000)
		tok := e.memberTok(t, "m")

		r := e.do(t, "POST", "/v1/members/m/transfers", tok, map[string]any{"partner_id": "meridian-air", "points": 3000})
		var res loyalty.TransferResult
		r.json(t, &res)
		if r.status != 201 || res.NewBalance != 7000 || res.PartnerUnits != 1000 || res.Status != "completed" || res.TransferID == "" {
			t.Fatalf("partner transfer: %d %s", r.status, r.raw)
		}
		if n := e.count(t, `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings WHERE account = 'partner:meridian-air'`); n != 3000 {
			t.Errorf("partner clearing account %d, want 3000", n)
		}
		for _, c := range []struct {
			name   string
			body   map[string]any
			status int
			code   string
		}{
			{"increment", map[string]any{"partner_id": "meridian-air", "points": 3500}, 422, "transfer_increment"},
			{"minimum", map[string]any{"partner_id": "northwind-airways", "points": 500}, 422, "transfer_below_minimum"},
			{"unknown partner", map[string]any{"partner_id": "nope", "points": 1000}, 404, "unknown_partner"},
			{"both targets", map[string]any{"partner_id": "meridian-air", "to_member_id": "x", "points": 3000}, 422, "invalid_transfer"},
			{"no points", map[string]any{"partner_id": "meridian-air"}, 422, "invalid_points"},
			{"too many", map[string]any{"partner_id": "northwind-airways", "points": 8000}, 422, "insufficient_points"},
		} {
			r := e.do(t, "POST", "/v1/members/m/transfers", tok, c.body)
			if r.status != c.status || r.problem(t)["code"] != c.code {
				t.Errorf("%s: %d %s", c.name, r.status, r.raw)
			}
		}

		// Partner rejects: 502, balance exactly as before.
		if r := e.do(t, "PUT", "/v1/admin/faults/partners/meridian-air", e.admin(t), map[string]any{"fail": true, "delay_ms": 5}); r.status != 200 {
			t.Fatalf("set partner fault: %d %s", r.status, r.raw)
		}
		r = e.do(t, "POST", "/v1/members/m/transfers", tok, map[string]any{"partner_id": "meridian-air", "points": 3000})
		if r.status != 502 || r.problem(t)["code"] != "partner_rejected" {
			t.Errorf("rejected: %d %s", r.status, r.raw)
		}
		if m := e.get(t, "m"); m.Balance != 7000 || m.Pending != 0 {
			t.Errorf("after rejection: balance %d pending %d", m.Balance, m.Pending)
		}
		// Another partner is unaffected; the fault is visible.
		if _, err := e.svc.Transfer(ctx, "m", loyalty.TransferRequest{PartnerID: "harbor-hotels", Points: 1500}); err != nil {
			t.Errorf("other partner: %v", err)
		}
		if f, err := e.svc.PartnerFault(ctx, "meridian-air"); err != nil || !f.Fail || f.DelayMS != 5 || f.Source != "admin" {
			t.Errorf("fault: %+v %v", f, err)
		}
		if f, err := e.svc.PartnerFault(ctx, "northwind-airways"); err != nil || f.Fail || f.Source != "program" {
			t.Errorf("default fault: %+v %v", f, err)
		}
		if r := e.do(t, "GET", "/v1/admin/faults/partners/nope", e.admin(t), nil); r.status != 404 {
			t.Errorf("unknown partner fault: %d", r.status)
		}
		e.verify(t)
	})
}

func TestMemberTransfers(t *testing.T) {
	ctx := context.Background()
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := program.Default()
		prog.MemberTransfers.YearlyLimit = 1000
		e := newEnvWith(t, d, prog)
		e.member(t, "a")
		e.member(t, "b")
		e.fund(t, "a", 5000)
		tok := e.memberTok(t, "a")

		r := e.do(t, "POST", "/v1/members/a/transfers", tok, map[string]any{"to_member_id": "b", "points": 600})
		var res loyalty.TransferResult
		r.json(t, &res)
		if r.status != 201 || res.NewBalance != 4400 || res.ToMemberID != "b" {
			t.Fatalf("member transfer: %d %s", r.status, r.raw)
		}
		if b := e.get(t, "b"); b.Balance != 600 || b.StatusPoints != 0 {
			t.Errorf("recipient: balance %d status points %d", b.Balance, b.StatusPoints)
		}
		_, err := e.svc.Transfer(ctx, "a", loyalty.TransferRequest{ToMemberID: "b", Points: 500})
		wantCode(t, "over the yearly limit", err, "transfer_limit_exceeded")
		_, err = e.svc.Transfer(ctx, "a", loyalty.TransferRequest{ToMemberID: "a", Points: 500})
		wantCode(t, "to self", err, "invalid_transfer")
		_, err = e.svc.Transfer(ctx, "a", loyalty.TransferRequest{ToMemberID: "ghost", Points: 100})
		wantCode(t, "to nobody", err, "recipient_not_found")
		_, err = e.svc.Transfer(ctx, "a", loyalty.TransferRequest{ToMemberID: "b", Points: 50})
		wantCode(t, "below minimum", err, "transfer_below_minimum")
		// The limit is per calendar year.
		e.clock.Set(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
		if _, err := e.svc.Transfer(ctx, "a", loyalty.TransferRequest{ToMemberID: "b", Points: 1000}); err != nil {
			t.Errorf("next year: %v", err)
		}
		// b sends back: opposite direction, same pair.
		if _, err := e.svc.Transfer(ctx, "b", loyalty.TransferRequest{ToMemberID: "a", Points: 300, Reference: "back-1"}); err != nil {
			t.Fatal(err)
		}
		replay, err := e.svc.Transfer(ctx, "b", loyalty.TransferRequest{ToMemberID: "a", Points: 300, Reference: "back-1"})
		if err != nil || !replay.Replayed {
			t.Errorf("replay: %+v %v", replay, err)
		}
		if a, b := e.get(t, "a"), e.get(t, "b"); a.Balance != 3700 || b.Balance != 1300 {
			t.Errorf("balances a %d b %d, want 3700 1300", a.Balance, b.Balance)
		}
		e.verify(t)
	})
}

func TestPartnerCredits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		svc := e.service(t)
		body := map[string]any{"partner_id": "northwind-airways", "external_id": "nw-1", "points": 2000}
		r := e.do(t, "POST", "/v1/members/m/partner-credits", svc, body)
		if r.status != 201 {
			t.Fatalf("credit: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/members/m/partner-credits", svc, body); r.status != 200 {
			t.Errorf("repeat: %d %s", r.status, r.raw)
		}
		body["points"] = 2001
		if r := e.do(t, "POST", "/v1/members/m/partner-credits", svc, body); r.status != 409 || r.problem(t)["code"] != "external_id_conflict" {
			t.Errorf("conflict: %d %s", r.status, r.raw)
		}
		if r := e.do(t, "POST", "/v1/members/m/partner-credits", e.memberTok(t, "m"), body); r.status != 403 {
			t.Errorf("member credits itself: %d", r.status)
		}
		if m := e.get(t, "m"); m.Balance != 2000 || m.StatusPoints != 0 {
			t.Errorf("balance %d status %d", m.Balance, m.StatusPoints)
		}
		if n := e.count(t, `SELECT SUM(amount) FROM loyalty_postings WHERE account = 'partner:northwind-airways'`); n != -2000 {
			t.Errorf("clearing account %d", n)
		}
		e.verify(t)
	})
}

// TestDoubleSpend: a member with N points and many concurrent redemptions,
// partner transfers and member transfers asking for far more than N.
func TestDoubleSpend(t *testing.T) {
	const n = 10_000
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "rich")
		for i := range 4 {
			e.member(t, fmt.Sprintf("kin%d", i))
		}
		e.fund(t, "rich", n)
		// One partner rejects everything, so voids race with captures too.
		if _, err := e.svc.SetPartnerFault(context.Background(), "harbor-hotels", true, 0); err != nil {
			t.Fatal(err)
		}
		var (
			debited atomic.Int64
			wg      sync.WaitGroup
		)
		for g := range 24 {
			wg.Go(func() {
				ctx := context.Background()
				var (
					points int64
					err    error
				)
				switch g % 4 {
				case 0:
					var r loyalty.RedemptionResult
					r, err = e.svc.Redeem(ctx, "rich", "merch-travel-mug", fmt.Sprintf("r%d", g))
					points = r.PointsDeducted
				case 1:
					var r loyalty.TransferResult
					r, err = e.svc.Transfer(ctx, "rich", loyalty.TransferRequest{PartnerID: "northwind-airways", Points: 2000})
					points = r.Points
				case 2:
					var r loyalty.TransferResult
					r, err = e.svc.Transfer(ctx, "rich", loyalty.TransferRequest{ToMemberID: fmt.Sprintf("kin%d", g%4), Points: 1500})
					points = r.Points
				case 3:
					var r loyalty.TransferResult
					r, err = e.svc.Transfer(ctx, "rich", loyalty.TransferRequest{PartnerID: "harbor-hotels", Points: 1000})
					points = r.Points
				}
				switch code := errs.CodeOf(err); {
				case err == nil:
					debited.Add(points)
				case code == "insufficient_points" || code == "partner_rejected":
				default:
					t.Errorf("goroutine %d: %v", g, err)
				}
			})
		}
		wg.Wait()
		m := e.get(t, "rich")
		if got := debited.Load(); got > n || m.Balance != n-got || m.Balance < 0 || m.Pending != 0 {
			t.Errorf("debited %d of %d; balance %d pending %d", got, n, m.Balance, m.Pending)
		}
		// Refusals are not checked against the final balance: a request may
		// be refused while a partner's rejected transfer still holds points.
		if debited.Load() == 0 {
			t.Error("nothing was debited")
		}
		if p := e.pendingHolds(t); p != 0 {
			t.Errorf("%d holds left pending", p)
		}
		if s := e.count(t, `SELECT COALESCE(SUM(amount), 0) FROM loyalty_postings`); s != 0 {
			t.Errorf("ledger sums to %d", s)
		}
		if low := e.count(t, `SELECT COUNT(*) FROM loyalty_postings WHERE account = 'member:rich' AND balance_after < 0`); low != 0 {
			t.Errorf("the balance went negative %d times", low)
		}
		e.verify(t)
	})
}

// TestMemberTransferRace: 20 concurrent transfers of a sender's only 100
// points: exactly one succeeds.
func TestMemberTransferRace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "s")
		recipient := func(i int) string {
			if i%2 == 0 {
				return fmt.Sprintf("r%02d", i) // sorts before "s"
			}
			return fmt.Sprintf("t%02d", i) // sorts after "s"
		}
		for i := range 20 {
			e.member(t, recipient(i))
		}
		e.fund(t, "s", 100)
		var (
			ok atomic.Int64
			wg sync.WaitGroup
		)
		for i := range 20 {
			wg.Go(func() {
				_, err := e.svc.Transfer(context.Background(), "s", loyalty.TransferRequest{ToMemberID: recipient(i), Points: 100})
				switch {
				case err == nil:
					ok.Add(1)
				case errs.CodeOf(err) != "insufficient_points":
					t.Errorf("transfer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Errorf("%d transfers succeeded, want exactly 1", ok.Load())
		}
		if m := e.get(t, "s"); m.Balance != 0 {
			t.Errorf("sender balance %d", m.Balance)
		}
		e.verify(t)
	})
}

// A member cannot learn whether an id is a member's from a transfer that fails
// anyway (issue 16, fix 10): to a member and to no one, the refusal is the
// same status and body. Only a transfer that would go through says
// recipient_not_found, and to a real member it moves the points.
func TestTransferRefusalsDoNotRevealRecipients(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		prog := program.Default()
		prog.MemberTransfers.YearlyLimit = 1000
		e := newEnvWith(t, d, prog)
		e.member(t, "m")
		e.member(t, "b")
		e.fund(t, "m", 800)
		tok := e.memberTok(t, "m")
		answer := func(to string, points int64) (int, map[string]any) {
			r := e.do(t, "POST", "/v1/members/m/transfers", tok, map[string]any{"to_member_id": to, "points": points})
			p := r.problem(t)
			delete(p, "trace_id")
			return r.status, p
		}
		for _, c := range []struct {
			name   string
			points int64
			code   string
		}{{"too few points", 900, "insufficient_points"}, {"over the yearly limit", 1100, "transfer_limit_exceeded"}} {
			status, known := answer("b", c.points)
			if status != 422 || known["code"] != c.code {
				t.Fatalf("%s to a member: %d %v, want 422 %s", c.name, status, known, c.code)
			}
			// Ids sorting before and after the sender's: the lock order differs.
			for _, ghost := range []string{"a-ghost", "z-ghost"} {
				if gs, unknown := answer(ghost, c.points); gs != status || !cmp.Equal(unknown, known) {
					t.Errorf("%s to %s: %d %v\nto a member: %d %v", c.name, ghost, gs, unknown, status, known)
				}
			}
		}
		if status, p := answer("z-ghost", 500); status != 422 || p["code"] != loyalty.CodeRecipientNotFound || p["field"] != "to_member_id" {
			t.Errorf("a transfer that would go through, to no one: %d %v", status, p)
		}
		if m, b := e.get(t, "m"), e.get(t, "b"); m.Balance != 800 || b.Balance != 0 {
			t.Errorf("balances m %d b %d, want 800 0: a refusal moved points", m.Balance, b.Balance)
		}
		e.verify(t)
	})
}
