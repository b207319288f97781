package loyalty_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	moneypkg "github.com/godwit-dev/godwit/internal/money"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

func card(ext string, cents int64, mcc string) loyalty.Activity {
	return loyalty.Activity{Activity: program.Activity{Type: program.ActivityCardSpend, Amount: usd(cents), MerchantCategory: mcc}, ExternalID: ext}
}

func purchase(ext string, cents int64) loyalty.Activity {
	return loyalty.Activity{Activity: program.Activity{Type: program.ActivityPurchase, Amount: usd(cents)}, ExternalID: ext}
}

// TestEarningRules books every default earning rule through the service for
// a blue member and checks base, status points, balance and the ledger.
func TestEarningRules(t *testing.T) {
	cases := []struct {
		name    string
		act     loyalty.Activity
		base    int64
		status  int64
		wantErr string
	}{
		{"flight F 150%", flight("f1", 2475, "F"), 3712, 3712, ""},
		{"flight A 150%", flight("f1", 1000, "A"), 1500, 1500, ""},
		{"flight J 125%", flight("f1", 2475, "J"), 3093, 3093, ""},
		{"flight Z 125%", flight("f1", 1000, "Z"), 1250, 1250, ""},
		{"flight Y 100%", flight("f1", 2475, "Y"), 2475, 2475, ""},
		{"flight M 100%", flight("f1", 1000, "M"), 1000, 1000, ""},
		{"flight H 75%", flight("f1", 2475, "H"), 1856, 1856, ""},
		{"flight U 75%", flight("f1", 1000, "U"), 750, 750, ""},
		{"flight Q 50%", flight("f1", 2475, "Q"), 1237, 1237, ""},
		{"flight S 50%", flight("f1", 1000, "S"), 500, 500, ""},
		{"flight T 25%", flight("f1", 2475, "T"), 618, 618, ""},
		{"flight L 25%", flight("f1", 1000, "L"), 250, 250, ""},
		{"flight O 0%", flight("f1", 2475, "O"), 0, 0, ""},
		{"flight G 0%", flight("f1", 1000, "G"), 0, 0, ""},
		{"flight Y short: minimum credit", flight("f1", 200, "Y"), 500, 500, ""},
		{"flight J short: minimum credit", flight("f1", 300, "J"), 500, 500, ""},
		{"flight Y at the minimum", flight("f1", 500, "Y"), 500, 500, ""},
		{"flight H short: no minimum below 100%", flight("f1", 200, "H"), 150, 150, ""},
		{"flight unknown fare class", flight("f1", 1000, "X"), 0, 0, "unknown_fare_class"},
		{"flight lower-case fare class", flight("f1", 1000, "y"), 0, 0, "unknown_fare_class"},
		{"flight zero distance", flight("f1", 0, "Y"), 0, 0, "invalid_activity"},
		{"hotel 10/USD", hotel("h1", 45678), 4567, 4567, ""},
		{"hotel under a dollar", hotel("h1", 99), 9, 9, ""},
		{"hotel under a dime", hotel("h1", 9), 0, 0, ""},
		{"hotel EUR", loyalty.Activity{Activity: program.Activity{Type: "hotel", Amount: amt("EUR", 1000)}, ExternalID: "h1"}, 0, 0, "currency_not_accepted"},
		{"hotel unknown currency", loyalty.Activity{Activity: program.Activity{Type: "hotel", Amount: amt("XYZ", 1000)}, ExternalID: "h1"}, 0, 0, "invalid_activity"},
		{"hotel negative", hotel("h1", -100), 0, 0, "invalid_activity"},
		{"card general 1/USD", card("c1", 12345, "5411"), 123, 0, ""},
		{"card airline 3000", card("c1", 12345, "3000"), 246, 0, ""},
		{"card airline 3299", card("c1", 12345, "3299"), 246, 0, ""},
		{"card airline 4511", card("c1", 12345, "4511"), 246, 0, ""},
		{"card 3300 general", card("c1", 12345, "3300"), 123, 0, ""},
		{"card lodging 3501", card("c1", 12345, "3501"), 246, 0, ""},
		{"card lodging 3999", card("c1", 12345, "3999"), 246, 0, ""},
		{"card lodging 7011", card("c1", 12345, "7011"), 246, 0, ""},
		{"card 3500 general", card("c1", 12345, "3500"), 123, 0, ""},
		{"card bad mcc", card("c1", 12345, "45"), 0, 0, "invalid_merchant_category"},
		{"purchase 1/USD", purchase("p1", 9999), 99, 99, ""},
		{"unknown type", loyalty.Activity{Activity: program.Activity{Type: "train"}, ExternalID: "x"}, 0, 0, "unknown_activity_type"},
		{"missing external id", flight("", 1000, "Y"), 0, 0, "invalid_external_id"},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, instantVesting()) // the rules, not when points vest (pending_test.go)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := fmt.Sprintf("m%d", i)
				e.member(t, id)
				if c.act.ExternalID != "" {
					c.act.ExternalID += "-" + id
				}
				res, err := e.svc.Earn(context.Background(), id, c.act)
				if c.wantErr != "" {
					if errs.CodeOf(err) != c.wantErr || errs.KindOf(err) != errs.Unprocessable {
						t.Fatalf("err = %v (code %s), want %s", err, errs.CodeOf(err), c.wantErr)
					}
					if n := e.count(t, `SELECT COUNT(*) FROM loyalty_transactions WHERE member_id = $1`, id); n != 0 {
						t.Errorf("%d transactions written for a rejected activity", n)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.BasePoints != c.base || res.StatusPointsEarned != c.status || res.TierBonus != 0 || res.TotalPointsEarned != c.base {
					t.Errorf("base %d status %d bonus %d total %d; want base %d status %d", res.BasePoints, res.StatusPointsEarned, res.TierBonus, res.TotalPointsEarned, c.base, c.status)
				}
				m := e.get(t, id)
				if m.Balance != c.base || m.StatusPoints != c.status {
					t.Errorf("member balance %d status %d, want %d %d", m.Balance, m.StatusPoints, c.base, c.status)
				}
			})
		}
		e.verify(t)
	})
}

func amt(cur string, amount int64) moneypkg.Money {
	return moneypkg.Money{Amount: amount, Currency: cur}
}

// TestTierBonusAndUpgrade: the activity that crosses a threshold earns at the
// old tier; the next one earns at the new tier. Bonus points never count
// toward status.
func TestTierBonusAndUpgrade(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		steps := []struct {
			act                     loyalty.Activity
			base, bonus             int64
			earnedAt, tier, newTier string
			status                  int64
		}{
			{hotel("h1", 240_000), 24000, 0, "blue", "blue", "", 24000},
			// Crosses 25,000 at blue: no bonus, upgrade to silver at once.
			{flight("f1", 2000, "Y"), 2000, 0, "blue", "silver", "silver", 26000},
			{flight("f2", 2000, "Y"), 2000, 500, "silver", "silver", "", 28000},
			{flight("f3", 1001, "Y"), 1001, 250, "silver", "silver", "", 29001},
			// Card spend earns a bonus but no status points.
			{card("c1", 100_000, "5411"), 1000, 250, "silver", "silver", "", 29001},
			{hotel("h2", 210_000), 21000, 5250, "silver", "gold", "gold", 50001},
			{flight("f4", 1001, "Y"), 1001, 500, "gold", "gold", "", 51002},
			{hotel("h3", 490_000), 49000, 24500, "gold", "platinum", "platinum", 100002},
			{flight("f5", 1001, "Y"), 1001, 1001, "platinum", "platinum", "", 101003},
		}
		var balance int64
		for _, s := range steps {
			res := e.earn(t, "m", s.act)
			balance += s.base + s.bonus
			got := [7]any{res.BasePoints, res.TierBonus, res.EarnedAtTier, res.Tier, res.NewTier, res.NewBalance, e.get(t, "m").StatusPoints}
			want := [7]any{s.base, s.bonus, s.earnedAt, s.tier, s.newTier, balance, s.status}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", s.act.ExternalID, diff)
			}
		}
		m := e.get(t, "m")
		if m.Tier != "platinum" || m.Balance != balance {
			t.Errorf("member %+v, want platinum with %d", m, balance)
		}
		e.verify(t)
	})
}

// TestStatusYearRollover: status points start again in a new calendar year,
// the tier is kept.
func TestStatusYearRollover(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.member(t, "m")
		e.earn(t, "m", hotel("h1", 300_000))
		if m := e.get(t, "m"); m.Tier != "silver" || m.StatusPoints != 30000 || m.StatusYear != 2026 {
			t.Fatalf("after first year: %+v", m)
		}
		e.clock.Set(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
		if m := e.get(t, "m"); m.StatusPoints != 0 || m.StatusYear != 2027 || m.Tier != "silver" {
			t.Fatalf("read in new year: %+v", m)
		}
		res := e.earn(t, "m", flight("f1", 1000, "Y"))
		if res.TierBonus != 250 {
			t.Errorf("tier bonus %d, want silver's 250", res.TierBonus)
		}
		if m := e.get(t, "m"); m.StatusPoints != 1000 || m.StatusYear != 2027 {
			t.Errorf("after earning in new year: %+v", m)
		}
		e.verify(t)
	})
}

func (e *env) promo(t testing.TB, p program.Promotion) {
	t.Helper()
	if p.Start.IsZero() {
		p.Start, p.End = startTime.Add(-24*time.Hour), startTime.Add(30*24*time.Hour)
	}
	if _, err := e.svc.CreatePromotion(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// TestPromotions: multipliers and fixed bonuses, tier limits, windows and
// both kinds of cap; several promotions stack and each is named.
func TestPromotions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.promo(t, program.Promotion{ID: "double", Name: "Double flights", ActivityTypes: []string{"flight"}, MultiplierBP: 20000, CapPoints: 2500})
		e.promo(t, program.Promotion{ID: "stay3", Name: "Hotel bonus", ActivityTypes: []string{"hotel"}, FixedBonus: 1000, CapTimes: 2})
		e.promo(t, program.Promotion{ID: "gold", Name: "Gold only", ActivityTypes: []string{"flight"}, Tiers: []string{"gold"}, FixedBonus: 777})
		e.promo(t, program.Promotion{ID: "later", Name: "Not yet", ActivityTypes: []string{"flight", "hotel"}, FixedBonus: 5,
			Start: startTime.Add(time.Hour), End: startTime.Add(48 * time.Hour)})
		e.member(t, "m")

		type want struct {
			promo int64
			ids   []string
		}
		check := func(a loyalty.Activity, w want) loyalty.EarnResult {
			t.Helper()
			res := e.earn(t, "m", a)
			ids := []string{}
			var sum int64
			for _, p := range res.Promotions {
				ids = append(ids, p.ID)
				sum += p.Points
			}
			if res.PromoBonus != w.promo || sum != w.promo || !cmp.Equal(ids, w.ids) {
				t.Errorf("%s: promo %d %v (sum %d), want %d %v", a.ExternalID, res.PromoBonus, ids, sum, w.promo, w.ids)
			}
			if res.TotalPointsEarned != res.BasePoints+res.TierBonus+res.PromoBonus {
				t.Errorf("%s: total %d != parts", a.ExternalID, res.TotalPointsEarned)
			}
			return res
		}
		check(flight("f1", 1000, "Y"), want{1000, []string{"double"}})
		check(flight("f2", 1000, "Y"), want{1000, []string{"double"}})
		check(flight("f3", 1000, "Y"), want{500, []string{"double"}}) // cap_points 2500
		check(flight("f4", 1000, "Y"), want{0, []string{}})
		check(hotel("h1", 10000), want{1000, []string{"stay3"}})
		check(hotel("h2", 10000), want{1000, []string{"stay3"}})
		check(hotel("h3", 10000), want{0, []string{}}) // cap_times 2
		// Occurring inside the later window.
		a := hotel("h4", 10000)
		a.OccurredAt = startTime.Add(2 * time.Hour)
		e.clock.Set(startTime.Add(3 * time.Hour))
		check(a, want{5, []string{"later"}})
		// A promotion with occurred_at before its start does not apply.
		b := hotel("h5", 10000)
		b.OccurredAt = startTime.Add(30 * time.Minute)
		check(b, want{0, []string{}})

		e.clock.Set(startTime.Add(49 * time.Hour)) // "later" has ended
		// Gold-only applies after the member reaches gold (at the old tier first).
		e.earn(t, "m", hotel("big", 500_000))
		check(flight("f5", 1000, "Y"), want{777, []string{"gold"}})

		// A deleted promotion stops applying.
		if err := e.svc.DeletePromotion(context.Background(), "gold"); err != nil {
			t.Fatal(err)
		}
		check(flight("f6", 1000, "Y"), want{0, []string{}})
		e.verify(t)
	})
}
