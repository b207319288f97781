package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// TransactionTypes are the statement entries' types, the values the
// statement's type filter takes. The ledger's vest transactions show as
// earn (Statement), and the filter's earn takes them too.
func TransactionTypes() []string {
	return []string{TxEarn, TxRedeem, TxRefund, TxTransfer, TxPartnerCredit, TxExpire, TxReversal, TxAdjustment}
}

// statementTypes reads the statement's type filter: repeated and/or
// comma-separated transaction types (?type=earn,redeem&type=vest). An
// unknown type is errs Invalid "invalid_type" (400).
func statementTypes(values []string) ([]string, error) {
	known := TransactionTypes()
	var types []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(known, t) {
				return nil, errs.Coded(errs.Invalid, "invalid_type", "type %q is not a transaction type; use one or more of %s",
					t, strings.Join(known, ", ")).With("field", "type")
			}
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
			if t == TxEarn && !slices.Contains(types, TxVest) {
				types = append(types, TxVest)
			}
		}
	}
	return types, nil
}

// typeFilter is the statement query's condition on t.type for types, its
// parameters numbered from first; empty when types is.
func typeFilter(types []string, first int) string {
	if len(types) == 0 {
		return ""
	}
	ps := make([]string, len(types))
	for i := range types {
		ps[i] = "$" + strconv.Itoa(first+i)
	}
	return " AND t.type IN (" + strings.Join(ps, ", ") + ")"
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// ExpiringLot is what remains of one lot and when it expires.
type ExpiringLot struct {
	LotID     string    `json:"lot_id"`
	Points    int64     `json:"points"`
	EarnedAt  time.Time `json:"earned_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Points is a member's points by state and by lot.
type Points struct {
	MemberID string `json:"member_id"`
	// Available is the spendable balance; Held is reserved by pending holds;
	// PendingTotal waits to vest (Pending, soonest first).
	Available    int64        `json:"available"`
	Held         int64        `json:"held"`
	PendingTotal int64        `json:"pending_total"`
	Pending      []PendingLot `json:"pending"`
	// ExpiryPolicy is the program's (lot or inactivity). Expiring are the
	// lots with points left, soonest-expiring first; they hold Available +
	// Held (nothing while the balance is negative). Under the inactivity
	// policy every lot expires at the member's inactivity expiry, which
	// any earning or redeeming pushes back.
	ExpiryPolicy string        `json:"expiry_policy"`
	Expiring     []ExpiringLot `json:"expiring"`
}

// MemberPoints reads member id's points by lot from one read snapshot.
func (s *Service) MemberPoints(ctx context.Context, id string) (Points, error) {
	tx, err := s.db.ReadSnapshot(ctx)
	if err != nil {
		return Points{}, internal("points", err)
	}
	defer func() { _ = tx.Rollback() }()
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns("")+` FROM loyalty_members WHERE id = $1`, id))
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Points{}, memberNotFound(id)
		}
		return Points{}, internal("points", err)
	}
	p := Points{MemberID: m.ID, Available: m.Balance, Held: m.Pending, ExpiryPolicy: s.prog.Expiry.Policy, Expiring: []ExpiringLot{}}
	if p.Pending, err = s.pendingLots(ctx, tx, m.ID); err != nil {
		return Points{}, internal("points", err)
	}
	for _, l := range p.Pending {
		p.PendingTotal += l.Points
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, remaining, earned_at, expires_at FROM loyalty_lots
		WHERE member_id = $1 AND remaining > 0 ORDER BY expires_at, earned_at, id`, m.ID)
	if err != nil {
		return Points{}, internal("points", err)
	}
	defer rows.Close()
	var inactivity time.Time
	if s.prog.Expiry.Policy == program.ExpiryInactivity {
		last := m.LastActivityAt
		if last.IsZero() {
			last = m.CreatedAt
		}
		inactivity = s.prog.InactivityExpiry(last)
	}
	for rows.Next() {
		var l ExpiringLot
		var earned, expires int64
		if err := rows.Scan(&l.LotID, &l.Points, &earned, &expires); err != nil {
			return Points{}, internal("points", err)
		}
		l.EarnedAt, l.ExpiresAt = db.FromMicros(earned), db.FromMicros(expires)
		if !inactivity.IsZero() {
			l.ExpiresAt = inactivity
		}
		p.Expiring = append(p.Expiring, l)
	}
	if err := rows.Err(); err != nil {
		return Points{}, internal("points", err)
	}
	return p, nil
}

func (s *Service) handlePoints(w http.ResponseWriter, r *http.Request) error {
	p, err := s.MemberPoints(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}
