package loadgen_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/loadgen"
)

func TestHotMember(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.MemberIDs = nil
	cfg.Setup = true
	cfg.Members = 6
	cfg.HotMember = true
	cfg.Mix = map[string]int{loadgen.OpRedeem: 6, loadgen.OpTransfer: 2, loadgen.OpEarn: 2}
	cfg.Requests = 400
	rep := run(t, cfg)
	if rep.Total.Errors != 0 {
		t.Fatalf("failures: %v", rep.Total.FailuresByCode)
	}

	f.snapshot(func(f *fake) {
		var hot string // setup creates members in parallel: find number 0
		for _, id := range f.memberOrder {
			if strings.HasSuffix(id, "-0") {
				hot = id
			}
		}
		if rep.HotMember != hot {
			t.Fatalf("report names hot member %q, want setup's first member %q", rep.HotMember, hot)
		}
		if len(f.redeemedBy) != 1 || f.redeemedBy[hot] != int(opStats(t, rep, loadgen.OpRedeem).Count) {
			t.Errorf("redemptions by member %v: want all %d from %s", f.redeemedBy, opStats(t, rep, loadgen.OpRedeem).Count, hot)
		}
		if len(f.sentBy) != 1 || f.sentBy[hot] != int(opStats(t, rep, loadgen.OpTransfer).Count) {
			t.Errorf("transfers by sender %v: want all from %s", f.sentBy, hot)
		}
		for _, tr := range f.transfers {
			if tr["to_member_id"] == hot {
				t.Errorf("the hot member transferred to itself: %v", tr)
			}
		}
		// Funded once, generously; nobody else is adjusted.
		if len(f.adjusted) != 1 || len(f.adjusted[hot]) != 1 || f.adjusted[hot][0] != 1_000_000_000 {
			t.Errorf("adjustments %v: want one of 1,000,000,000 points for %s", f.adjusted, hot)
		}
		// Earns still spread over the members.
		earned := 0
		for _, n := range f.activities {
			if n > 3 { // beyond the three starting flights
				earned++
			}
		}
		if earned < 2 {
			t.Errorf("earns reached %d members beyond their starting flights: want them spread", earned)
		}
	})
}

func TestHotMemberWithoutSetupIsTheFirstKnown(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.HotMember = true
	cfg.HotMemberPoints = 5000
	cfg.Mix = map[string]int{loadgen.OpRedeem: 1}
	cfg.Requests = 50
	rep := run(t, cfg)
	if rep.HotMember != "m1" {
		t.Errorf("hot member %q, want the first of MemberIDs, m1", rep.HotMember)
	}
	f.snapshot(func(f *fake) {
		if len(f.redeemedBy) != 1 || f.redeemedBy["m1"] != 50 {
			t.Errorf("redemptions by member %v: want 50 from m1", f.redeemedBy)
		}
		if len(f.adjusted) != 0 {
			t.Errorf("adjustments without setup: %v", f.adjusted)
		}
	})
}

func TestHotProductSellsOut(t *testing.T) {
	f := newFake(t, fakeBehaviour{products: 5, trackStock: true})
	cfg := baseConfig(f)
	cfg.Setup = true
	cfg.Members = 4
	cfg.VUs = 8
	cfg.HotProduct = true
	cfg.HotProductStock = 60
	cfg.DeclineShare = -1
	cfg.Mix = map[string]int{loadgen.OpCheckout: 1}
	cfg.Requests = 200
	rep := run(t, cfg)

	co := opStats(t, rep, loadgen.OpCheckout)
	if co.Errors != 0 {
		t.Fatalf("failures: %v", co.FailuresByCode)
	}
	// Exactly the stock sells; every later buyer is an expected rejection.
	if co.Count != 200 || co.Rejected != 140 || co.ErrorsByCode["insufficient_stock"] != 140 {
		t.Errorf("checkouts %d, rejected %d (%v): want 200 with 140 insufficient_stock", co.Count, co.Rejected, co.ErrorsByCode)
	}
	if rep.HotProduct != "p0" {
		t.Errorf("hot product %q, want the catalogue's first, p0", rep.HotProduct)
	}
	f.snapshot(func(f *fake) {
		if f.stockSet["p0"] != 60 || f.inventory["p0"] != 0 {
			t.Errorf("p0 stocked with %d, %d left: want 60, 0", f.stockSet["p0"], f.inventory["p0"])
		}
		for _, p := range []string{"p1", "p2", "p3", "p4"} {
			if f.stockSet[p] != 100_000_000 {
				t.Errorf("%s stocked with %d, want the default 100,000,000", p, f.stockSet[p])
			}
		}
		if len(f.cartLines) != 200 {
			t.Errorf("%d carts with items, want 200", len(f.cartLines))
		}
		for cart, lines := range f.cartLines {
			if len(lines) != 1 || lines[0] != (cartLine{ProductID: "p0", Quantity: 1}) {
				t.Errorf("cart %s holds %v: want one p0", cart, lines)
			}
		}
	})
}

func TestSpreadByDefault(t *testing.T) {
	f := newFake(t, fakeBehaviour{products: 5})
	cfg := baseConfig(f)
	cfg.Mix = map[string]int{loadgen.OpRedeem: 1, loadgen.OpCheckout: 1}
	cfg.Requests = 300
	rep := run(t, cfg)
	if rep.HotMember != "" || rep.HotProduct != "" {
		t.Errorf("hot member %q, hot product %q without asking", rep.HotMember, rep.HotProduct)
	}
	f.snapshot(func(f *fake) {
		if len(f.redeemedBy) < 3 {
			t.Errorf("redemptions by member %v: want them spread", f.redeemedBy)
		}
		products := map[string]bool{}
		multi := false
		for _, lines := range f.cartLines {
			multi = multi || len(lines) > 1
			for _, l := range lines {
				products[l.ProductID] = true
			}
		}
		if len(products) < 4 || !multi {
			t.Errorf("checkouts bought %d products, multi-line carts %v: want them spread", len(products), multi)
		}
	})
}

func TestHotRunReportNamesTheRows(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	cfg := baseConfig(f)
	cfg.HotMember, cfg.HotProduct = true, true
	cfg.Requests = 50
	rep := run(t, cfg)

	var table bytes.Buffer
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "hot member m1") || !strings.Contains(table.String(), "hot product p0") {
		t.Errorf("table does not name the hot rows:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		HotMember  string `json:"hot_member"`
		HotProduct string `json:"hot_product"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.HotMember != "m1" || doc.HotProduct != "p0" {
		t.Errorf("JSON hot_member %q, hot_product %q", doc.HotMember, doc.HotProduct)
	}
}

func TestHotValidation(t *testing.T) {
	f := newFake(t, fakeBehaviour{})
	for _, mut := range []func(*loadgen.Config){
		func(c *loadgen.Config) { c.HotMemberPoints = -1 },
		func(c *loadgen.Config) { c.HotProductStock = -1 },
	} {
		cfg := baseConfig(f)
		cfg.Requests = 1
		mut(&cfg)
		if _, err := loadgen.Run(t.Context(), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
