package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Transfer kinds (the loyalty.transfer_kind attribute).
const (
	TransferPartner       = "partner"
	TransferMember        = "member"
	TransferPartnerCredit = "partner_credit" // inbound, from a partner
)

// Transfer statuses.
const (
	TransferPending   = "pending"
	TransferCompleted = "completed"
	TransferFailed    = "failed"
)

// TransferRequest asks to move a member's points to a partner program
// (PartnerID) or to another member (ToMemberID); exactly one is set.
type TransferRequest struct {
	PartnerID  string
	ToMemberID string
	Points     int64
	// Reference makes the call idempotent, as for Redeem.
	Reference string
}

// TransferResult is the outcome of a completed transfer.
type TransferResult struct {
	Status        string    `json:"status"`
	TransferID    string    `json:"transfer_id"`
	Kind          string    `json:"kind"`
	MemberID      string    `json:"member_id"`
	PartnerID     string    `json:"partner_id,omitempty"`
	PartnerUnits  int64     `json:"partner_units,omitempty"`
	ToMemberID    string    `json:"to_member_id,omitempty"`
	Points        int64     `json:"points"`
	NewBalance    int64     `json:"new_balance"`
	Confirmation  string    `json:"confirmation,omitempty"`
	TransactionID string    `json:"transaction_id"`
	TraceID       string    `json:"trace_id"`
	CreatedAt     time.Time `json:"created_at"`
	Replayed      bool      `json:"-"`
}

// transferRuleError turns the program's transfer errors into client errors.
func transferRuleError(err error) error {
	code := "invalid_transfer"
	switch {
	case errors.Is(err, program.ErrInvalidPoints):
		code = "invalid_points"
	case errors.Is(err, program.ErrTransferBelowMinimum):
		code = "transfer_below_minimum"
	case errors.Is(err, program.ErrTransferIncrement):
		code = "transfer_increment"
	case errors.Is(err, program.ErrTransferLimitExceeded):
		code = "transfer_limit_exceeded"
	case errors.Is(err, program.ErrInvalidProgram):
		return internal("transfer", err)
	}
	return errs.Coded(errs.Unprocessable, code, "%s", err.Error()).With("field", "points")
}

// Transfer moves points out of a member's account.
//
// To a partner it is two-phase like Redeem: hold, ask the partner (the
// PartnerGateway), then capture into the partner's clearing account or void
// (errs BadGateway "partner_rejected"; balance unchanged). The program's
// ratio, minimum and increment apply.
//
// To another member it is one ledger transaction that locks both members in
// id order, checks the sender's yearly limit against what they sent this
// calendar year (UTC), and gives the recipient a new lot. Transferred points
// never count as status points.
//
// A negative balance blocks both (Unprocessable "negative_balance"); too few
// points is Unprocessable "insufficient_points" with points_short and
// current_balance.
func (s *Service) Transfer(ctx context.Context, memberID string, req TransferRequest) (res TransferResult, err error) {
	kind := TransferPartner
	if req.ToMemberID != "" {
		kind = TransferMember
	}
	ctx, span := s.tracer.Start(ctx, "loyalty.transfer_points", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", TxTransfer),
		attribute.String("loyalty.transfer_kind", kind),
		attribute.Int64("loyalty.points", req.Points),
	))
	defer func() {
		result := "completed"
		switch {
		case err != nil:
			result = errs.CodeOf(err)
		case res.Replayed:
			result = "replayed"
		}
		span.SetAttributes(attribute.String("loyalty.transfer_result", result))
		endSpan(span, err)
	}()
	if (req.PartnerID == "") == (req.ToMemberID == "") {
		return TransferResult{}, errs.Coded(errs.Unprocessable, "invalid_transfer", "name exactly one of partner_id and to_member_id").With("field", "partner_id")
	}
	if len(req.Reference) > maxReferenceLen {
		return TransferResult{}, errs.Coded(errs.Unprocessable, "invalid_reference", "reference is at most %d bytes", maxReferenceLen)
	}
	if kind == TransferMember {
		span.SetAttributes(attribute.String("loyalty.to_member_id", req.ToMemberID))
		res, err = s.transferToMember(ctx, memberID, req)
	} else {
		span.SetAttributes(attribute.String("loyalty.partner_id", req.PartnerID))
		res, err = s.transferToPartner(ctx, memberID, req)
	}
	if err != nil {
		return TransferResult{}, internal("transfer", err)
	}
	if !res.Replayed && s.transferred != nil {
		s.transferred.Add(ctx, res.Points, metric.WithAttributes(attribute.String("loyalty.transfer_kind", kind)))
	}
	span.SetAttributes(attribute.String("loyalty.transfer_id", res.TransferID), attribute.Int64("loyalty.new_balance", res.NewBalance))
	if kind == TransferPartner {
		span.SetAttributes(attribute.Int64("loyalty.partner_units", res.PartnerUnits))
	}
	return res, nil
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// transferByReference finds an earlier transfer with the reference; a
// pending one is a conflict, a completed one is returned for replay.
func transferByReference(ctx context.Context, tx *db.Tx, reference, memberID string, req TransferRequest) (*TransferResult, error) {
	if reference == "" {
		return nil, nil
	}
	var (
		r                 TransferResult
		partner, to, txID sql.NullString
		created           int64
	)
	err := tx.QueryRowContext(ctx, `SELECT id, kind, member_id, partner_id, to_member_id, points, partner_units, status, confirmation,
		new_balance, transaction_id, trace_id, created_at FROM loyalty_transfers WHERE reference = $1 AND status <> 'failed'`, reference).
		Scan(&r.TransferID, &r.Kind, &r.MemberID, &partner, &to, &r.Points, &r.PartnerUnits, &r.Status, &r.Confirmation,
			&r.NewBalance, &txID, &r.TraceID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.PartnerID, r.ToMemberID, r.TransactionID, r.CreatedAt = partner.String, to.String, txID.String, db.FromMicros(created)
	if r.MemberID != memberID || r.PartnerID != req.PartnerID || r.ToMemberID != req.ToMemberID || r.Points != req.Points {
		return nil, errs.Coded(errs.Conflict, "transfer_reference_conflict", "this idempotency key was used for another transfer")
	}
	if r.Status == TransferPending {
		return nil, errs.Coded(errs.Conflict, "transfer_in_progress", "a transfer with this idempotency key is still in progress; retry shortly").
			With("transfer_id", r.TransferID)
	}
	r.Replayed = true
	return &r, nil
}

func (s *Service) transferToPartner(ctx context.Context, memberID string, req TransferRequest) (TransferResult, error) {
	pt, ok := s.prog.Partner(req.PartnerID)
	if !ok {
		return TransferResult{}, unknownPartner(req.PartnerID)
	}
	units, err := pt.PartnerUnits(req.Points)
	if err != nil {
		return TransferResult{}, transferRuleError(err)
	}
	now := s.now().UTC()
	res := TransferResult{
		Status: TransferCompleted, TransferID: newID(), Kind: TransferPartner, MemberID: memberID, PartnerID: pt.ID,
		PartnerUnits: units, Points: req.Points, TraceID: traceIDOf(ctx), CreatedAt: now,
	}
	var (
		holdID string
		replay *TransferResult
	)
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		m, err := lockMember(ctx, tx, memberID)
		if err != nil {
			return err
		}
		if replay, err = transferByReference(ctx, tx, req.Reference, memberID, req); err != nil || replay != nil {
			return err
		}
		if m.Balance < 0 {
			return negativeBalance(m)
		}
		if m.Balance < req.Points {
			return insufficientPoints(m, req.Points)
		}
		if holdID, err = s.insertHold(ctx, tx, m.ID, req.Points, "transfer:"+res.TransferID, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO loyalty_transfers (id, kind, member_id, partner_id, points, partner_units, hold_id, reference,
			status, trace_id, created_at, updated_at) VALUES ($1, 'partner', $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9)`,
			res.TransferID, m.ID, pt.ID, req.Points, units, holdID, nullable(req.Reference), res.TraceID, db.Micros(now))
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	if replay != nil {
		return *replay, nil
	}

	conf, perr := s.callPartner(ctx, PartnerTransferRequest{TransferID: res.TransferID, MemberID: memberID, Partner: pt, Points: req.Points, Units: units})
	res.Confirmation = conf
	completed := false
	err = s.db.InTx(context.WithoutCancel(ctx), func(ctx context.Context, tx *db.Tx) error {
		completed = false
		h, m, err := lockHold(ctx, tx, holdID)
		if err != nil {
			return err
		}
		at := s.now().UTC()
		if perr == nil && h.Status == HoldPending {
			txID, bal, err := captureHoldTx(ctx, tx, h, m, TxTransfer, PartnerAccount(pt.ID),
				Breakdown{TransferID: res.TransferID, PartnerID: pt.ID, PartnerUnits: units}, at,
				&settleRow{table: "loyalty_transfers", id: res.TransferID, status: "completed", confirmation: conf})
			if err != nil {
				return err
			}
			res.TransactionID, res.NewBalance, completed = txID, bal, true
			return nil
		}
		if h.Status == HoldPending {
			if err := voidHoldTx(ctx, tx, h, at); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_transfers SET status = 'failed', updated_at = $2 WHERE id = $1`, res.TransferID, db.Micros(at))
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	if !completed {
		return TransferResult{}, errs.Coded(errs.BadGateway, "partner_rejected",
			"partner %s did not accept the transfer; no points were taken", pt.ID).With("partner_id", pt.ID).With("transfer_id", res.TransferID)
	}
	return res, nil
}

// callPartner asks the partner under its own span, bounded like fulfilment.
func (s *Service) callPartner(ctx context.Context, r PartnerTransferRequest) (string, error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.partner_transfer", trace.WithAttributes(
		attribute.String("loyalty.partner_id", r.Partner.ID),
		attribute.Int64("loyalty.partner_units", r.Units),
	))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.holdTTL/2)
	defer cancel()
	conf, err := s.partners.Transfer(ctx, r)
	if err == nil && conf == "" {
		err = errors.New("partner returned no confirmation")
	}
	if err != nil {
		span.SetAttributes(attribute.String("loyalty.partner_status", "rejected"))
		span.RecordError(err)
		span.SetStatus(codes.Error, "partner rejected")
		return "", err
	}
	span.SetAttributes(attribute.String("loyalty.partner_status", "accepted"), attribute.String("loyalty.confirmation_code", conf))
	return conf, nil
}

func yearStart(t time.Time) time.Time {
	return time.Date(t.UTC().Year(), time.January, 1, 0, 0, 0, 0, time.UTC)
}

func (s *Service) transferToMember(ctx context.Context, memberID string, req TransferRequest) (TransferResult, error) {
	if req.ToMemberID == memberID {
		return TransferResult{}, errs.Coded(errs.Unprocessable, "invalid_transfer", "a member cannot transfer points to themselves").With("field", "to_member_id")
	}
	if err := s.prog.CheckMemberTransfer(req.Points, 0); err != nil {
		return TransferResult{}, transferRuleError(err)
	}
	now := s.now().UTC()
	res := TransferResult{
		Status: TransferCompleted, TransferID: newID(), Kind: TransferMember, MemberID: memberID, ToMemberID: req.ToMemberID,
		Points: req.Points, TraceID: traceIDOf(ctx), CreatedAt: now,
	}
	var replay *TransferResult
	err := s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		from, to, err := lockMembersSorted(ctx, tx, memberID, req.ToMemberID)
		if err != nil {
			if errs.Is(err, "member_not_found") {
				if e, _ := errs.As(err); e.Details["member_id"] == req.ToMemberID {
					return errs.Coded(errs.Unprocessable, "recipient_not_found", "no member with id %q to transfer to", req.ToMemberID).With("field", "to_member_id")
				}
			}
			return err
		}
		if replay, err = transferByReference(ctx, tx, req.Reference, memberID, req); err != nil || replay != nil {
			return err
		}
		if from.Balance < 0 {
			return negativeBalance(from)
		}
		var sent int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(points), 0) FROM loyalty_transfers
			WHERE member_id = $1 AND kind = 'member' AND status = 'completed' AND created_at >= $2`,
			from.ID, db.Micros(yearStart(now))).Scan(&sent); err != nil {
			return err
		}
		if err := s.prog.CheckMemberTransfer(req.Points, sent); err != nil {
			return transferRuleError(err)
		}
		if from.Balance < req.Points {
			return insufficientPoints(from, req.Points)
		}
		fromLedger, toLedger := from.Balance+from.Pending, to.Balance+to.Pending
		lots, err := consumeLots(ctx, tx, from.ID, lotDebit(fromLedger, req.Points), "")
		if err != nil {
			return err
		}
		txID := newID()
		bd, err := json.Marshal(Breakdown{TransferID: res.TransferID, FromMemberID: from.ID, ToMemberID: to.ID, Lots: lots, Reference: req.Reference})
		if err != nil {
			return err
		}
		fromAfter, toAfter := fromLedger-req.Points, toLedger+req.Points
		if err := insertTransaction(ctx, tx, txID, TxTransfer, from.ID, "", string(bd), actorOf(ctx), res.TraceID, now,
			posting{MemberAccount(from.ID), -req.Points, &fromAfter}, posting{MemberAccount(to.ID), req.Points, &toAfter}); err != nil {
			return err
		}
		if err := insertLot(ctx, tx, to.ID, txID, lotCredit(toLedger, req.Points), now, s.prog.ExpiryFor(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance - $2, last_activity_at = $3, updated_at = $4 WHERE id = $1`,
			from.ID, req.Points, db.Micros(laterOf(from.LastActivityAt, now)), db.Micros(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, last_activity_at = $3, updated_at = $4 WHERE id = $1`,
			to.ID, req.Points, db.Micros(laterOf(to.LastActivityAt, now)), db.Micros(now)); err != nil {
			return err
		}
		res.TransactionID, res.NewBalance = txID, from.Balance-req.Points
		_, err = tx.ExecContext(ctx, `INSERT INTO loyalty_transfers (id, kind, member_id, to_member_id, points, reference, status,
			new_balance, transaction_id, trace_id, created_at, updated_at)
			VALUES ($1, 'member', $2, $3, $4, $5, 'completed', $6, $7, $8, $9, $9)`,
			res.TransferID, from.ID, to.ID, req.Points, nullable(req.Reference), res.NewBalance, txID, res.TraceID, db.Micros(now))
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	if replay != nil {
		return *replay, nil
	}
	return res, nil
}

// PartnerCreditResult is the outcome of an inbound partner credit.
type PartnerCreditResult struct {
	TransactionID string    `json:"transaction_id"`
	MemberID      string    `json:"member_id"`
	PartnerID     string    `json:"partner_id"`
	ExternalID    string    `json:"external_id"`
	Points        int64     `json:"points"`
	NewBalance    int64     `json:"new_balance"`
	TraceID       string    `json:"trace_id"`
	CreatedAt     time.Time `json:"created_at"`
	Replayed      bool      `json:"-"`
}

// PartnerCredit books points a partner sends in for a member (the partner's
// own transfer into this program): partner clearing account → member, a new
// lot, no status points. It is idempotent on (partner, external id); the
// same id with another member or amount is errs Conflict "external_id_conflict".
// On a replay NewBalance is the member's current balance.
func (s *Service) PartnerCredit(ctx context.Context, memberID, partnerID, externalID string, points int64) (res PartnerCreditResult, err error) {
	ctx, span := s.tracer.Start(ctx, "loyalty.partner_credit", trace.WithAttributes(
		attribute.String("loyalty.member_id", memberID),
		attribute.String("loyalty.transaction_type", TxPartnerCredit),
		attribute.String("loyalty.partner_id", partnerID),
		attribute.Int64("loyalty.points", points),
	))
	defer func() {
		result := "credited"
		switch {
		case err != nil:
			result = errs.CodeOf(err)
		case res.Replayed:
			result = "replayed"
		}
		span.SetAttributes(attribute.String("loyalty.result", result))
		endSpan(span, err)
	}()
	if _, ok := s.prog.Partner(partnerID); !ok {
		return PartnerCreditResult{}, errs.Coded(errs.Unprocessable, "unknown_partner", "no partner with id %q", partnerID).With("field", "partner_id")
	}
	if strings.TrimSpace(externalID) == "" || len(externalID) > maxExternalIDLen || !utf8.ValidString(externalID) {
		return PartnerCreditResult{}, errs.Coded(errs.Unprocessable, "invalid_external_id", "external_id is required and at most %d bytes", maxExternalIDLen).With("field", "external_id")
	}
	if points <= 0 || points > program.MaxActivityPoints {
		return PartnerCreditResult{}, errs.Coded(errs.Unprocessable, "invalid_points", "points must be between 1 and %d", program.MaxActivityPoints).With("field", "points")
	}
	now := s.now().UTC()
	key := "partner-credit:" + partnerID + ":" + externalID
	res = PartnerCreditResult{MemberID: memberID, PartnerID: partnerID, ExternalID: externalID, Points: points, TraceID: traceIDOf(ctx), CreatedAt: now}
	err = s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		res.Replayed = false
		m, err := lockMember(ctx, tx, memberID)
		if err != nil {
			return err
		}
		var (
			priorTx, priorMember, priorTrace sql.NullString
			priorAmount, priorAt             int64
		)
		err = tx.QueryRowContext(ctx, `SELECT t.id, t.member_id, t.trace_id, t.created_at, p.amount FROM loyalty_transactions t
			JOIN loyalty_postings p ON p.transaction_id = t.id AND p.account = $2
			WHERE t.idempotency_key = $1`, key, PartnerAccount(partnerID)).Scan(&priorTx, &priorMember, &priorTrace, &priorAt, &priorAmount)
		switch {
		case err == nil:
			if priorMember.String != memberID || -priorAmount != points {
				return errs.Coded(errs.Conflict, "external_id_conflict",
					"external_id %q was already credited for a different member or amount", externalID).With("external_id", externalID)
			}
			res.TransactionID, res.TraceID, res.CreatedAt = priorTx.String, priorTrace.String, db.FromMicros(priorAt)
			res.NewBalance, res.Replayed = m.Balance, true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res.TransactionID = newID()
		bd, err := json.Marshal(Breakdown{PartnerID: partnerID, ExternalID: externalID})
		if err != nil {
			return err
		}
		ledger := m.Balance + m.Pending
		after := ledger + points
		if err := insertTransaction(ctx, tx, res.TransactionID, TxPartnerCredit, m.ID, key, string(bd), actorOf(ctx), res.TraceID, now,
			posting{PartnerAccount(partnerID), -points, nil}, posting{MemberAccount(m.ID), points, &after}); err != nil {
			return err
		}
		if err := insertLot(ctx, tx, m.ID, res.TransactionID, lotCredit(ledger, points), now, s.prog.ExpiryFor(now)); err != nil {
			return err
		}
		res.NewBalance = m.Balance + points
		_, err = tx.ExecContext(ctx, `UPDATE loyalty_members SET balance = balance + $2, last_activity_at = $3, updated_at = $4 WHERE id = $1`,
			m.ID, points, db.Micros(laterOf(m.LastActivityAt, now)), db.Micros(now))
		return err
	})
	if err != nil {
		return PartnerCreditResult{}, internal("partner credit", err)
	}
	if !res.Replayed && s.transferred != nil {
		s.transferred.Add(ctx, points, metric.WithAttributes(attribute.String("loyalty.transfer_kind", TransferPartnerCredit)))
	}
	span.SetAttributes(attribute.String("loyalty.transaction_id", res.TransactionID), attribute.Int64("loyalty.new_balance", res.NewBalance))
	return res, nil
}
