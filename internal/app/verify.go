package app

import (
	"context"
	"net/http"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// DefaultVerifyGrace is how far past an expiry a reservation, checkout or hold
// may still be open before Verify calls it a violation: long enough for the
// background jobs to have run once.
const DefaultVerifyGrace = 2 * time.Minute

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	OK         bool     `json:"ok"`
	Violations []string `json:"violations"`
	// InFlight lists work that is not finished but whose owner's lease (or the
	// retry window after it) runs: not violations; each line says by when it
	// settles. SettlesBy is the latest of those times.
	InFlight  []string      `json:"in_flight,omitempty"`
	SettlesBy time.Time     `json:"settles_by,omitzero"`
	Took      time.Duration `json:"-"`
	TookMS    float64       `json:"took_ms"`
}

// Verify checks every invariant of the ledger and the shop (see
// loyalty.Service.Verify and checkout.Service.Verify).
func (a *App) Verify(ctx context.Context, grace time.Duration) (VerifyReport, error) {
	start := time.Now()
	loyal, err := a.Loyalty.Verify(ctx)
	if err != nil {
		return VerifyReport{}, err
	}
	shop, err := a.Checkout.Verify(ctx, grace)
	if err != nil {
		return VerifyReport{}, err
	}
	inFlight, settlesBy, err := a.Checkout.InFlight(ctx, grace)
	if err != nil {
		return VerifyReport{}, err
	}
	r := VerifyReport{Violations: append(loyal, shop...), InFlight: inFlight, SettlesBy: settlesBy}
	if r.Violations == nil {
		r.Violations = []string{}
	}
	r.OK = len(r.Violations) == 0
	r.Took = time.Since(start)
	r.TookMS = float64(r.Took.Microseconds()) / 1000
	return r, nil
}

func (a *App) verifyRoute() httpx.Route {
	return httpx.Route{Method: "GET", Pattern: "/v1/admin/verify", Summary: "Check every ledger and shop invariant", Access: auth.AdminOnly,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			grace := DefaultVerifyGrace
			if v := r.URL.Query().Get("grace"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil || d < 0 {
					return errs.Coded(errs.Invalid, "invalid_query", "grace must be a non-negative duration such as 2m").With("field", "grace")
				}
				grace = d
			}
			rep, err := a.Verify(r.Context(), grace)
			if err != nil {
				return err
			}
			httpx.WriteJSON(w, http.StatusOK, rep)
			return nil
		}}
}
