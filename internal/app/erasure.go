package app

import (
	"context"
	"net/http"

	"github.com/godwit-dev/godwit/internal/checkout"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/notify"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// Kinds of what an erasure scrubs outside the member's row, the keys of the
// audit record's counts (docs/security.md).
const (
	ErasedCheckouts   = "checkouts"
	ErasedOutbox      = "outbox"
	ErasedIdempotency = "idempotency_records"
	ErasedMailFiles   = "mail_files"
)

// erasureRoute is DELETE /v1/admin/members/{id}/personal-data. It lives
// here, not in loyalty, because a person's data reaches beyond loyalty's
// tables: checkouts, the outbox, stored responses and the .eml files.
func (a *App) erasureRoute() httpx.Route {
	return httpx.Route{Method: "DELETE", Pattern: "/v1/admin/members/{id}/personal-data",
		Summary: "Erase a member's name and email everywhere Godwit stores them; the ledger and the member's points stay",
		Access:  auth.AdminOnly,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if _, err := a.ErasePersonalData(r.Context(), r.PathValue("id")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}}
}

// ErasePersonalData erases member id's name and email from every place
// Godwit stores them: the member's row (kept as a stub: the ledger names
// it), checkouts of the member and guest checkouts to the address, the
// outbox, stored Idempotency-Key responses, and the .eml files the file
// sender wrote. Events carry no personal data (ids and amounts only), and
// the ledger none, so both stay whole and verify stays clean. The database
// changes are one transaction with an audit record of counts
// (loyalty.ErasePersonalData); the files are removed before it (so a
// failure leaves the address known for a retry) and again after it (a
// delivery that raced the first sweep). Erasing an erased member changes
// nothing.
func (a *App) ErasePersonalData(ctx context.Context, id string) (loyalty.ErasureResult, error) {
	pd, err := a.Loyalty.ReadPersonalData(ctx, id)
	if err != nil {
		return loyalty.ErasureResult{}, err
	}
	files := 0
	sweep := func() error {
		if pd.Erased {
			return nil
		}
		n, err := notify.EraseFiles(a.mailDir, pd.Email)
		files += n
		return err
	}
	if err := sweep(); err != nil {
		return loyalty.ErasureResult{}, err
	}
	res, err := a.Loyalty.ErasePersonalData(ctx, id, func(ctx context.Context, tx *db.Tx, pd loyalty.PersonalData) (map[string]int64, error) {
		counts := map[string]int64{}
		var err error
		if counts[ErasedCheckouts], err = checkout.ErasePersonalData(ctx, tx, pd.MemberID, pd.Email); err != nil {
			return nil, err
		}
		if counts[ErasedOutbox], err = notify.EraseRecipient(ctx, tx, pd.Email); err != nil {
			return nil, err
		}
		if counts[ErasedIdempotency], err = idempotency.ErasePersonalData(ctx, tx, pd.Email, pd.Name); err != nil {
			return nil, err
		}
		counts[ErasedMailFiles] = int64(files)
		return counts, nil
	})
	if err != nil {
		return loyalty.ErasureResult{}, err
	}
	if err := sweep(); err != nil {
		return res, err
	}
	return res, nil
}
