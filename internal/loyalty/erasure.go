package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// PersonalData is what Godwit stores about a member as a person. Never put
// it on spans, logs or metrics.
type PersonalData struct {
	MemberID    string
	Name, Email string
	// Erased: the data was erased already (Name and Email are empty).
	Erased bool
}

// ReadPersonalData returns member id's personal data, merged or not (a
// merged duplicate keeps its name and email until erased). No member is
// errs NotFound CodeMemberNotFound.
func (s *Service) ReadPersonalData(ctx context.Context, id string) (PersonalData, error) {
	pd := PersonalData{MemberID: id}
	var erased int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT name, email, erased_at FROM loyalty_members WHERE id = $1`, id).
		Scan(&pd.Name, &pd.Email, &erased)
	if errors.Is(err, sql.ErrNoRows) {
		return PersonalData{}, memberNotFound(id)
	}
	if err != nil {
		return PersonalData{}, internal("read personal data", err)
	}
	pd.Erased = erased != 0
	return pd, nil
}

// Scrubber removes a member's personal data from tables outside loyalty's,
// in the erasure's transaction, and counts what it changed by kind (the
// audit record keeps the counts, never the data).
type Scrubber func(ctx context.Context, tx *db.Tx, pd PersonalData) (map[string]int64, error)

// ErasureResult is what an erasure did: the audit record's details.
type ErasureResult struct {
	MemberID string    `json:"member_id"`
	AuditID  string    `json:"audit_id,omitempty"`
	ErasedAt time.Time `json:"erased_at"`
	// Scrubbed counts the rows changed outside the member's own, by kind.
	Scrubbed map[string]int64 `json:"scrubbed"`
	// Already: the member had been erased before; nothing was done.
	Already bool   `json:"-"`
	Actor   string `json:"actor"`
	TraceID string `json:"trace_id"`
}

// ErasePersonalData erases member id's name and email, and with scrub the
// copies other tables hold, in one transaction under the member's row lock;
// the member's row stays as a stub (the ledger's postings, lots and holds
// name it), and so do the ledger and the member's points: erasure changes
// no balance, so verify stays clean. An audit record says who erased the
// member and when, and how many rows were scrubbed, with no personal data.
// Erasing an erased member changes nothing (Already). Merged members may be
// erased (a merged duplicate keeps its data until then).
func (s *Service) ErasePersonalData(ctx context.Context, id string, scrub Scrubber) (res ErasureResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.erase_personal_data", trace.WithAttributes(attribute.String("loyalty.member_id", id)))
	defer func() {
		done := "erased"
		if res.Already {
			done = "already_erased"
		}
		endWithResult(span, "loyalty.result", done, false, err)
	}()
	now := s.now().UTC()
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		pd := PersonalData{MemberID: id}
		var erased int64
		err := tx.QueryRowContext(ctx, `SELECT name, email, erased_at FROM loyalty_members WHERE id = $1`+tx.ForUpdate(), id).
			Scan(&pd.Name, &pd.Email, &erased)
		if errors.Is(err, sql.ErrNoRows) {
			return memberNotFound(id)
		}
		if err != nil {
			return err
		}
		res = ErasureResult{MemberID: id, Scrubbed: map[string]int64{}, Actor: actorOf(ctx), TraceID: traceIDOf(ctx)}
		if erased != 0 {
			res.Already, res.ErasedAt = true, db.FromMicros(erased)
			return nil
		}
		res.ErasedAt, res.AuditID = now, newID()
		if scrub != nil {
			if res.Scrubbed, err = scrub(ctx, tx, pd); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET name = '', email = '', erased_at = $2, updated_at = $2 WHERE id = $1`,
			id, db.Micros(now)); err != nil {
			return err
		}
		details, err := json.Marshal(res)
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, res.AuditID, id, "erase", res.Actor, res.TraceID, string(details), now)
	})
	if err != nil {
		return ErasureResult{}, internal("erase personal data", err)
	}
	for kind, n := range res.Scrubbed {
		span.SetAttributes(attribute.Int64("loyalty.erased."+kind, n))
	}
	return res, nil
}
