package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// books is a test's database with helpers that use the ledger API only.
type books struct {
	t *testing.T
	d *db.DB
}

func (b books) tx(fn func(ctx context.Context, tx *db.Tx) error) {
	b.t.Helper()
	if err := b.d.InTx(context.Background(), fn); err != nil {
		b.t.Fatal(err)
	}
}

// member enrols an account holder with nothing.
func (b books) member(id string) {
	b.t.Helper()
	b.tx(func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_members
			(id, name, email, tier, balance, held, status_points, status_year, requalified_year, created_at, updated_at)
			VALUES ($1, $1, 'x@example.com', 'base', 0, 0, 0, 2026, 2025, $2, $2)`, id, db.Micros(t0))
		return err
	})
}

// credit gives a member points from the program, as one lot expiring at expires.
func (b books) credit(member string, points ledger.Points, expires time.Time) string {
	b.t.Helper()
	id := ledger.NewID()
	b.tx(func(ctx context.Context, tx *db.Tx) error {
		before, err := ledger.ReadBalance(ctx, tx, member, true)
		if err != nil {
			return err
		}
		return ledger.PostCredit(ctx, tx, ledger.Credit{ID: id, Type: "test_credit", MemberID: member, Breakdown: "{}",
			At: t0, From: ledger.Issuance, Points: points, Before: before, LotID: ledger.NewID(), LotExpires: expires})
	})
	return id
}

// debit takes points back to the program, the lots giving their share.
func (b books) debit(member string, points ledger.Points) []ledger.LotUse {
	b.t.Helper()
	var uses []ledger.LotUse
	b.tx(func(ctx context.Context, tx *db.Tx) (err error) {
		before, err := ledger.ReadBalance(ctx, tx, member, true)
		if err != nil {
			return err
		}
		if uses, err = ledger.ConsumeLots(ctx, tx, member, ledger.LotDebit(before.Ledger(), points), ""); err != nil {
			return err
		}
		if err := ledger.Post(ctx, tx, ledger.Transaction{ID: ledger.NewID(), Type: "test_debit", MemberID: member, Breakdown: "{}", At: t0,
			Postings: []ledger.Posting{ledger.Member(member, -points, before.Ledger()-points), ledger.To(ledger.Issuance, points)}}); err != nil {
			return err
		}
		return ledger.AddToBalance(ctx, tx, member, -points, t0, ledger.Stmt{})
	})
	return uses
}

func (b books) balance(member string) ledger.Balance {
	b.t.Helper()
	var bal ledger.Balance
	b.tx(func(ctx context.Context, tx *db.Tx) (err error) {
		bal, err = ledger.ReadBalance(ctx, tx, member, false)
		return err
	})
	return bal
}

func (b books) verify() []string {
	b.t.Helper()
	tx, err := b.d.ReadSnapshot(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	problems, err := ledger.Verify(context.Background(), tx, ledger.Checks(t0, 5*time.Minute))
	if err != nil {
		b.t.Fatal(err)
	}
	return problems
}

func (b books) sound() {
	b.t.Helper()
	if p := b.verify(); len(p) != 0 {
		b.t.Fatalf("the books are not sound:\n%s", strings.Join(p, "\n"))
	}
}

func TestPostingsSumToZero(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		b := books{t, d}
		b.member("a")
		b.member("b")
		b.credit("a", 500, t0.AddDate(1, 0, 0))
		err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			return ledger.Post(ctx, tx, ledger.Transaction{ID: ledger.NewID(), Type: "lopsided", Breakdown: "{}", At: t0,
				Postings: []ledger.Posting{ledger.To(ledger.Issuance, -10), ledger.To(ledger.Redemption, 9)}})
		})
		if err == nil || !strings.Contains(err.Error(), "sum to -1") {
			t.Fatalf("an unbalanced transaction: %v, want refused", err)
		}
		// A member-to-member move: two member postings, each with its
		// running balance; a's lots give up the points, b gets a lot.
		b.tx(func(ctx context.Context, tx *db.Tx) error {
			id := ledger.NewID()
			if _, err := ledger.ConsumeLots(ctx, tx, "a", ledger.LotDebit(500, 200), ""); err != nil {
				return err
			}
			if err := ledger.Post(ctx, tx, ledger.Transaction{ID: id, Type: "move", MemberID: "a", Breakdown: "{}", At: t0,
				Postings: []ledger.Posting{ledger.Member("a", -200, 300), ledger.Member("b", 200, 200)}}); err != nil {
				return err
			}
			if err := ledger.InsertLot(ctx, tx, ledger.Lot{ID: ledger.NewID(), MemberID: "b", TransactionID: id, Points: ledger.LotCredit(0, 200),
				EarnedAt: t0, ExpiresAt: t0.AddDate(1, 0, 0)}); err != nil {
				return err
			}
			if err := ledger.AddToBalance(ctx, tx, "a", -200, t0, ledger.Stmt{}); err != nil {
				return err
			}
			return ledger.AddToBalance(ctx, tx, "b", 200, t0, ledger.Stmt{})
		})
		var sum, n int64
		b.tx(func(ctx context.Context, tx *db.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM loyalty_postings`).Scan(&sum, &n)
		})
		if sum != 0 || n != 4 {
			t.Fatalf("postings sum to %d over %d rows, want 0 over 4", sum, n)
		}
		if got := b.balance("a"); got != (ledger.Balance{Spendable: 300}) {
			t.Fatalf("a's balance %+v", got)
		}
		b.sound()
	})
}

func TestHoldPlaceCaptureVoid(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		b := books{t, d}
		b.member("m")
		b.credit("m", 1000, t0.AddDate(1, 0, 0))
		place := func(ref string, points ledger.Points) (ledger.Hold, bool, error) {
			h := ledger.Hold{ID: ledger.NewID(), MemberID: "m", Points: points, Reference: ref}
			var placed bool
			err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) (err error) {
				_, placed, err = ledger.PlaceHold(ctx, tx, ledger.Placement{HoldID: h.ID, MemberID: "m", Points: points, Reference: ref,
					At: t0, Expires: t0.Add(time.Hour)})
				return err
			})
			return h, placed, err
		}
		capture := func(h ledger.Hold) error {
			return d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				var before ledger.Balance
				locked, err := ledger.LockHoldForCapture(ctx, tx, h.ID, ledger.BalanceOf(&before))
				if err != nil {
					return err
				}
				_, err = ledger.CaptureHold(ctx, tx, ledger.Capture{Hold: locked, Before: before, TxID: ledger.NewID(), Type: "spend",
					Account: ledger.Redemption, At: t0, Describe: func(lots []ledger.LotUse) ([]byte, error) {
						return json.Marshal(struct {
							Lots []ledger.LotUse `json:"lots,omitempty"`
						}{lots})
					}})
				return err
			})
		}
		void := func(h ledger.Hold) error {
			return d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				var bal ledger.Balance
				locked, err := ledger.LockHold(ctx, tx, h.ID, ledger.BalanceOf(&bal))
				if err != nil {
					return err
				}
				return ledger.VoidHold(ctx, tx, locked, t0)
			})
		}

		h1, placed, err := place("order-1", 600)
		if err != nil || !placed {
			t.Fatalf("place: %v, %v", placed, err)
		}
		if got := b.balance("m"); got != (ledger.Balance{Spendable: 400, Held: 600}) {
			t.Fatalf("after the hold: %+v", got)
		}
		if _, placed, err := place("order-2", 500); err != nil || placed {
			t.Fatalf("a hold beyond the spendable balance: placed %v, %v", placed, err)
		}
		if _, _, err := place("order-1", 100); !db.IsUniqueViolation(err) {
			t.Fatalf("a second hold with the same reference: %v, want a unique violation", err)
		}
		b.sound()

		if err := capture(h1); err != nil {
			t.Fatal(err)
		}
		if err := capture(h1); !errors.Is(err, ledger.ErrHoldNotPending) {
			t.Fatalf("second capture: %v, want ErrHoldNotPending", err)
		}
		if err := void(h1); !errors.Is(err, ledger.ErrHoldNotPending) {
			t.Fatalf("void after capture: %v, want ErrHoldNotPending", err)
		}
		if got := b.balance("m"); got != (ledger.Balance{Spendable: 400}) {
			t.Fatalf("after the capture: %+v", got)
		}
		b.sound()

		h2, _, err := place("order-3", 300)
		if err != nil {
			t.Fatal(err)
		}
		if err := void(h2); err != nil {
			t.Fatal(err)
		}
		if err := void(h2); !errors.Is(err, ledger.ErrHoldNotPending) {
			t.Fatalf("second void: %v, want ErrHoldNotPending", err)
		}
		if err := capture(h2); !errors.Is(err, ledger.ErrHoldNotPending) {
			t.Fatalf("capture after void: %v, want ErrHoldNotPending", err)
		}
		got, err := ledger.GetHold(context.Background(), d.Read(), h2.ID)
		if err != nil || got.Status != ledger.HoldVoided || got.Points != 300 {
			t.Fatalf("voided hold: %+v, %v", got, err)
		}
		if _, err := ledger.GetHold(context.Background(), d.Read(), "nope"); !errors.Is(err, ledger.ErrHoldNotFound) {
			t.Fatalf("no hold: %v", err)
		}
		if got := b.balance("m"); got != (ledger.Balance{Spendable: 400}) {
			t.Fatalf("after the void: %+v", got)
		}
		b.sound()
	})
}

func TestLotsFIFOAndDebt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		b := books{t, d}
		b.member("m")
		late := b.credit("m", 100, t0.AddDate(0, 3, 0))
		soon := b.credit("m", 100, t0.AddDate(0, 1, 0))
		_ = late
		lotOf := func(txID string) string {
			var id string
			b.tx(func(ctx context.Context, tx *db.Tx) error {
				return tx.QueryRowContext(ctx, `SELECT id FROM loyalty_lots WHERE transaction_id = $1`, txID).Scan(&id)
			})
			return id
		}
		uses := b.debit("m", 150)
		if len(uses) != 2 || uses[0].LotID != lotOf(soon) || uses[0].Points != 100 || uses[1].Points != 50 {
			t.Fatalf("uses %+v: want the soonest-expiring lot first, whole, then 50 of the other", uses)
		}
		b.sound()
		// Debit beyond the balance: the lots are emptied, not overdrawn, and the member owes 70.
		if uses := b.debit("m", 120); ledger.Used(uses) != 50 {
			t.Fatalf("uses %+v: want the remaining 50", uses)
		}
		if got := b.balance("m"); got.Spendable != -70 {
			t.Fatalf("balance %+v, want -70", got)
		}
		b.sound()
		// A credit repays the debt first; only the rest forms a lot.
		repay := b.credit("m", 100, t0.AddDate(1, 0, 0))
		var lot int64
		b.tx(func(ctx context.Context, tx *db.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT points FROM loyalty_lots WHERE transaction_id = $1`, repay).Scan(&lot)
		})
		if lot != 30 {
			t.Fatalf("a 100-point credit with 70 owed formed a lot of %d, want 30", lot)
		}
		b.sound()
		if ledger.LotCredit(-70, 50) != 0 || ledger.LotCredit(-70, 100) != 30 || ledger.LotDebit(20, 50) != 20 || ledger.LotDebit(-5, 10) != 0 {
			t.Fatal("LotCredit / LotDebit arithmetic")
		}
	})
}

func TestVerifyFindsBrokenInvariants(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		b := books{t, d}
		b.member("m")
		tx := b.credit("m", 100, t0.AddDate(1, 0, 0))
		b.sound()
		b.tx(func(ctx context.Context, dtx *db.Tx) error {
			if _, err := dtx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + 5 WHERE id = 'm'`); err != nil {
				return err
			}
			_, err := dtx.ExecContext(ctx, `UPDATE loyalty_postings SET amount = amount + 1 WHERE transaction_id = $1 AND account = $2`,
				tx, ledger.Issuance)
			return err
		})
		p := strings.Join(b.verify(), "\n")
		for _, want := range []string{
			"transaction " + tx + ": postings sum to 1, not 0",
			"ledger: all postings sum to 1, not 0",
			"member m: cached balance 105 + pending 0 != 100",
			"member m: ledger balance 105 but 100 remaining in lots",
		} {
			if !strings.Contains(p, want) {
				t.Errorf("verify does not report %q:\n%s", want, p)
			}
		}
	})
}
