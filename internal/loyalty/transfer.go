package loyalty

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/godwit-dev/godwit/internal/events"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/loyalty/program"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Transfer kinds (the loyalty.transfer_kind attribute).
const (
	TransferPartner       = "partner"
	TransferMember        = "member"
	TransferPartnerCredit = "partner_credit" // inbound, from a partner
)

// CodeRecipientNotFound is the code (Unprocessable, field to_member_id) of a
// member transfer to an id no member has. It is answered only to a transfer
// that would otherwise go through; any other refusal comes first.
const CodeRecipientNotFound = "recipient_not_found"

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

// checkedTransfer is a transfer request that passed checkTransfer: its kind
// and, to a partner, the partner and the units the points become.
type checkedTransfer struct {
	kind    string // TransferMember or TransferPartner; "" when the request names neither or both
	partner program.Partner
	units   int64
}

// checkTransfer checks everything about a transfer that needs no database:
// exactly one of partner_id and to_member_id, the reference's length, then
// for a member transfer not to memberID and the program's minimum and
// yearly limit on the amount alone, for a partner transfer a known partner
// and its minimum and increment (the units are computed). The kind is set
// once the first two checks pass, also when a later one refuses.
func (s *Service) checkTransfer(memberID string, req TransferRequest) (checkedTransfer, error) {
	if (req.PartnerID == "") == (req.ToMemberID == "") {
		return checkedTransfer{}, errs.Coded(errs.Unprocessable, "invalid_transfer", "name exactly one of partner_id and to_member_id").With("field", "partner_id")
	}
	if len(req.Reference) > maxReferenceLen {
		return checkedTransfer{}, errs.Coded(errs.Unprocessable, "invalid_reference", "reference is at most %d bytes", maxReferenceLen)
	}
	if req.ToMemberID != "" {
		c := checkedTransfer{kind: TransferMember}
		if req.ToMemberID == memberID {
			return c, errs.Coded(errs.Unprocessable, "invalid_transfer", "a member cannot transfer points to themselves").With("field", "to_member_id")
		}
		if err := s.prog.CheckMemberTransfer(req.Points, 0); err != nil {
			return c, transferRuleError(err)
		}
		return c, nil
	}
	c := checkedTransfer{kind: TransferPartner}
	pt, ok := s.prog.Partner(req.PartnerID)
	if !ok {
		return c, unknownPartner(req.PartnerID)
	}
	units, err := pt.PartnerUnits(req.Points)
	if err != nil {
		return c, transferRuleError(err)
	}
	c.partner, c.units = pt, units
	return c, nil
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
// current_balance. A member transfer to an id no member has is Unprocessable
// CodeRecipientNotFound, answered only when nothing else refuses it, so that
// a refusal does not tell whether the id is a member's.
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
	defer func() { endWithResult(span, "loyalty.transfer_result", "completed", res.Replayed, err) }()
	c, err := s.checkTransfer(memberID, req)
	switch c.kind {
	case TransferMember:
		span.SetAttributes(attribute.String("loyalty.to_member_id", req.ToMemberID))
	case TransferPartner:
		span.SetAttributes(attribute.String("loyalty.partner_id", req.PartnerID))
	}
	if err != nil {
		return TransferResult{}, err
	}
	if c.kind == TransferMember {
		res, err = s.transferToMember(ctx, memberID, req)
	} else {
		res, err = s.transferToPartner(ctx, memberID, req, c.partner, c.units)
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

// transferByReference finds an earlier transfer with the reference and
// returns it Replayed (found is false when there is none, or no
// reference); a pending one is a conflict.
func transferByReference(ctx context.Context, tx *db.Tx, reference, memberID string, req TransferRequest) (r TransferResult, found bool, err error) {
	if reference == "" {
		return TransferResult{}, false, nil
	}
	var (
		partner, to, txID sql.NullString
		created           int64
	)
	err = tx.QueryRowContext(ctx, `SELECT id, kind, member_id, partner_id, to_member_id, points, partner_units, status, confirmation,
		new_balance, transaction_id, trace_id, created_at FROM loyalty_transfers WHERE reference = $1 AND status <> 'failed'`, reference).
		Scan(&r.TransferID, &r.Kind, &r.MemberID, &partner, &to, &r.Points, &r.PartnerUnits, &r.Status, &r.Confirmation,
			&r.NewBalance, &txID, &r.TraceID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return TransferResult{}, false, nil
	}
	if err != nil {
		return TransferResult{}, false, err
	}
	r.PartnerID, r.ToMemberID, r.TransactionID, r.CreatedAt = partner.String, to.String, txID.String, db.FromMicros(created)
	if r.MemberID != memberID || r.PartnerID != req.PartnerID || r.ToMemberID != req.ToMemberID || r.Points != req.Points {
		return TransferResult{}, false, errs.Coded(errs.Conflict, "transfer_reference_conflict", "this idempotency key was used for another transfer")
	}
	if r.Status == TransferPending {
		// Not the key's final answer (httpx.RetryLater), as for redemptions.
		return TransferResult{}, false, httpx.RetryLater(errs.Coded(errs.Conflict, "transfer_in_progress", "a transfer with this idempotency key is still in progress; retry shortly").
			With("transfer_id", r.TransferID), 1)
	}
	r.Replayed = true
	return r, true, nil
}

// checkDebit refuses a debit of points from a member who owes points or has
// too few.
func checkDebit(m Member, points int64) error {
	if m.Balance < 0 {
		return negativeBalance(m)
	}
	if m.Balance < points {
		return insufficientPoints(m, points)
	}
	return nil
}

// transferToPartner moves points checked by checkTransfer to partner pt,
// where they become units.
func (s *Service) transferToPartner(ctx context.Context, memberID string, req TransferRequest, pt program.Partner, units int64) (TransferResult, error) {
	now := s.now().UTC()
	res := TransferResult{
		Status: TransferCompleted, TransferID: newID(), Kind: TransferPartner, MemberID: memberID, PartnerID: pt.ID,
		PartnerUnits: units, Points: req.Points, TraceID: traceIDOf(ctx), CreatedAt: now,
	}
	holdID := newID()
	var replay TransferResult
	err := s.retryOnDuplicate(ctx, lockedMember(memberID, func(ctx context.Context, tx *db.Tx, m Member) (err error) {
		replay, err = s.holdTransfer(ctx, tx, m, req, res, holdID)
		return err
	}))
	if err != nil || replay.Replayed {
		return replay, err
	}
	conf, perr := s.callPartner(ctx, PartnerTransferRequest{TransferID: res.TransferID, MemberID: memberID, Partner: pt, Points: req.Points, Units: units})
	res.Confirmation = conf
	completed := false
	err = s.db.InTx(context.WithoutCancel(ctx), func(ctx context.Context, tx *db.Tx) (err error) {
		completed, err = s.settleTransfer(ctx, tx, &res, holdID, perr)
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

// holdTransfer is a partner transfer's first transaction, member m's row
// locked: replay an earlier transfer with the reference (returned
// Replayed), or hold the points with the pending transfer's row.
func (s *Service) holdTransfer(ctx context.Context, tx *db.Tx, m Member, req TransferRequest, res TransferResult, holdID string) (TransferResult, error) {
	if replay, found, err := transferByReference(ctx, tx, req.Reference, m.ID, req); err != nil || found {
		return replay, err
	}
	if err := checkDebit(m, req.Points); err != nil {
		return TransferResult{}, err
	}
	row := ledger.Stmt{SQL: `INSERT INTO loyalty_transfers (id, kind, member_id, partner_id, points, partner_units, hold_id, reference,
		status, trace_id, created_at, updated_at)
		SELECT $1::text, 'partner', $2::text, $3::text, $4::bigint, $5::bigint, $6::text, $7::text, 'pending', $8::text, $9::bigint, $9::bigint WHERE $done`,
		Args: []any{res.TransferID, m.ID, res.PartnerID, req.Points, res.PartnerUnits, holdID, nullable(req.Reference), res.TraceID, db.Micros(res.CreatedAt)}}
	_, ok, err := ledger.PlaceHold(ctx, tx, ledger.Placement{HoldID: holdID, MemberID: m.ID, Points: ledger.Points(req.Points),
		Reference: "transfer:" + res.TransferID, At: res.CreatedAt, Expires: res.CreatedAt.Add(s.holdTTL), With: &row})
	if err == nil && !ok {
		err = fmt.Errorf("ledger: member %s cannot cover a %d-point hold it was checked for", m.ID, req.Points)
	}
	return TransferResult{}, err
}

// settleTransfer is a partner transfer's second transaction: capture the
// hold into the partner's clearing account with the transfer completed, or,
// when the partner refused or the hold is no longer pending, void it and
// mark the transfer failed. It says whether the transfer completed.
func (s *Service) settleTransfer(ctx context.Context, tx *db.Tx, res *TransferResult, holdID string, perr error) (bool, error) {
	var m Member
	h, err := ledger.LockHold(ctx, tx, holdID, memberHolder(&m, "m"))
	if err != nil {
		return false, holdErr(err, holdID)
	}
	at := s.now().UTC()
	if perr == nil && h.Status == HoldPending {
		txID, bal, err := s.capture(ctx, tx, h, m, TxTransfer, PartnerAccount(res.PartnerID),
			Breakdown{TransferID: res.TransferID, PartnerID: res.PartnerID, PartnerUnits: res.PartnerUnits}, at,
			&settleRow{table: "loyalty_transfers", id: res.TransferID, status: TransferCompleted, confirmation: res.Confirmation})
		if err != nil {
			return false, err
		}
		res.TransactionID, res.NewBalance = txID, bal
		return true, nil
	}
	if h.Status == HoldPending {
		if err := ledger.VoidHold(ctx, tx, h, at); err != nil {
			return false, err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE loyalty_transfers SET status = 'failed', updated_at = $2 WHERE id = $1`, res.TransferID, db.Micros(at))
	return false, err
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

// transferToMember moves points checked by checkTransfer to another member.
func (s *Service) transferToMember(ctx context.Context, memberID string, req TransferRequest) (TransferResult, error) {
	now := s.now().UTC()
	res := TransferResult{
		Status: TransferCompleted, TransferID: newID(), Kind: TransferMember, MemberID: memberID, ToMemberID: req.ToMemberID,
		Points: req.Points, TraceID: traceIDOf(ctx), CreatedAt: now,
	}
	var out TransferResult
	err := s.retryOnDuplicate(ctx, func(ctx context.Context, tx *db.Tx) error {
		from, to, exists, err := lockTransferPair(ctx, tx, memberID, req.ToMemberID)
		if err != nil {
			return err
		}
		if replay, found, err := transferByReference(ctx, tx, req.Reference, memberID, req); err != nil || found {
			out = replay
			return err
		}
		if err := s.checkMemberTransfer(ctx, tx, from, req.Points, now); err != nil {
			return err
		}
		// Only now, with everything about the sender decided, may the answer
		// depend on whether the recipient exists: a transfer that would fail
		// anyway answers the same for any id, so member ids cannot be probed
		// for free (with too many points, say); an id is learnt only by a
		// transfer that would have gone through.
		if !exists {
			return errs.Coded(errs.Unprocessable, CodeRecipientNotFound, "no member with id %q to transfer to", req.ToMemberID).With("field", "to_member_id")
		}
		out = res
		return s.moveBetweenMembers(ctx, tx, from, to, req, &out)
	})
	if err != nil {
		return TransferResult{}, err
	}
	return out, nil
}

// lockTransferPair locks a transfer's sender and, when it exists, its
// recipient, in id order. exists is false (and err nil) when there is no
// member toID: the caller decides about the sender first (see
// transferToMember).
func lockTransferPair(ctx context.Context, tx *db.Tx, fromID, toID string) (from, to Member, exists bool, err error) {
	from, to, err = lockMembersSorted(ctx, tx, fromID, toID)
	if !errs.Is(err, CodeMemberNotFound) {
		return from, to, err == nil, err
	}
	if e, _ := errs.As(err); e.Details["member_id"] != toID {
		return Member{}, Member{}, false, err
	}
	// The recipient is missing; the sender may not be locked yet (it sorts
	// after the recipient) or was but its row was not returned: lock it alone.
	from, err = lockMember(ctx, tx, fromID)
	return from, Member{}, false, err
}

// checkMemberTransfer checks a member-to-member transfer of points against
// the sender's balance and yearly limit (what they sent this calendar year).
func (s *Service) checkMemberTransfer(ctx context.Context, tx *db.Tx, from Member, points int64, now time.Time) error {
	if from.Balance < 0 {
		return negativeBalance(from)
	}
	var sent int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(points), 0) FROM loyalty_transfers
		WHERE member_id = $1 AND kind = 'member' AND status = 'completed' AND created_at >= $2`,
		from.ID, db.Micros(yearStart(now))).Scan(&sent); err != nil {
		return err
	}
	if err := s.prog.CheckMemberTransfer(points, sent); err != nil {
		return transferRuleError(err)
	}
	return checkDebit(from, points)
}

// moveBetweenMembers books a member-to-member transfer, both members
// locked: the sender's lots give up the points, one transaction moves them,
// the recipient gets a new lot, both balances move and the completed
// transfer's row is written. res gets the transaction and new balance.
func (s *Service) moveBetweenMembers(ctx context.Context, tx *db.Tx, from, to Member, req TransferRequest, res *TransferResult) error {
	now, points := res.CreatedAt, ledger.Points(req.Points)
	fromLedger, toLedger := balanceOf(from).Ledger(), balanceOf(to).Ledger()
	lots, err := ledger.ConsumeLots(ctx, tx, from.ID, ledger.LotDebit(fromLedger, points), "")
	if err != nil {
		return err
	}
	bd, err := json.Marshal(Breakdown{TransferID: res.TransferID, FromMemberID: from.ID, ToMemberID: to.ID, Lots: lots, Reference: req.Reference})
	if err != nil {
		return err
	}
	txID := newID()
	if err := ledger.Post(ctx, tx, ledger.Transaction{ID: txID, Type: TxTransfer, MemberID: from.ID, Breakdown: string(bd),
		Actor: actorOf(ctx), TraceID: res.TraceID, At: now,
		Postings: []ledger.Posting{ledger.Member(from.ID, -points, fromLedger-points), ledger.Member(to.ID, points, toLedger+points)}}); err != nil {
		return err
	}
	if err := ledger.InsertLot(ctx, tx, ledger.Lot{ID: newID(), MemberID: to.ID, TransactionID: txID, Points: ledger.LotCredit(toLedger, points),
		EarnedAt: now, ExpiresAt: s.prog.ExpiryFor(now)}); err != nil {
		return err
	}
	if err := ledger.AddToBalance(ctx, tx, from.ID, -points, now, touch(from, now)); err != nil {
		return err
	}
	if err := ledger.AddToBalance(ctx, tx, to.ID, points, now, touch(to, now)); err != nil {
		return err
	}
	res.TransactionID, res.NewBalance = txID, from.Balance-req.Points
	_, err = tx.ExecContext(ctx, `INSERT INTO loyalty_transfers (id, kind, member_id, to_member_id, points, reference, status,
		new_balance, transaction_id, trace_id, created_at, updated_at)
		VALUES ($1, 'member', $2, $3, $4, $5, 'completed', $6, $7, $8, $9, $9)`,
		res.TransferID, from.ID, to.ID, req.Points, nullable(req.Reference), res.NewBalance, txID, res.TraceID, db.Micros(now))
	if err != nil {
		return err
	}
	evs, err := s.event(ctx, events.PointsTransferred, from.ID, now, events.PointsTransferredData{
		MemberID: from.ID, TransactionID: txID, TransferID: res.TransferID, Points: req.Points,
		ToMemberID: to.ID, Balance: res.NewBalance})
	if err != nil {
		return err
	}
	return s.emit(ctx, tx, evs...)
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
	defer func() { endWithResult(span, "loyalty.result", "credited", res.Replayed, err) }()
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
	err = s.retryOnDuplicate(ctx, lockedMember(memberID, func(ctx context.Context, tx *db.Tx, m Member) error {
		res.Replayed = false
		if found, err := priorPartnerCredit(ctx, tx, m, key, &res); err != nil || found {
			return err
		}
		txID, err := s.credit(ctx, tx, m, creditOf{typ: TxPartnerCredit, key: key, from: PartnerAccount(partnerID), points: points,
			bd: Breakdown{PartnerID: partnerID, ExternalID: externalID}, now: now, set: touch(m, now)})
		res.TransactionID, res.NewBalance = txID, m.Balance+points
		return err
	}))
	if err != nil {
		return PartnerCreditResult{}, internal("partner credit", err)
	}
	if !res.Replayed && s.transferred != nil {
		s.transferred.Add(ctx, points, metric.WithAttributes(attribute.String("loyalty.transfer_kind", TransferPartnerCredit)))
	}
	span.SetAttributes(attribute.String("loyalty.transaction_id", res.TransactionID), attribute.Int64("loyalty.new_balance", res.NewBalance))
	return res, nil
}

// priorPartnerCredit finds an earlier credit with idempotency key key and
// fills res from it, Replayed; found is false when there is none. The same
// key for another member or amount is errs Conflict "external_id_conflict".
func priorPartnerCredit(ctx context.Context, tx *db.Tx, m Member, key string, res *PartnerCreditResult) (found bool, err error) {
	var (
		priorTx, priorMember, priorTrace sql.NullString
		priorAmount, priorAt             int64
	)
	err = tx.QueryRowContext(ctx, `SELECT t.id, t.member_id, t.trace_id, t.created_at, p.amount FROM loyalty_transactions t
		JOIN loyalty_postings p ON p.transaction_id = t.id AND p.account = $2
		WHERE t.idempotency_key = $1`, key, PartnerAccount(res.PartnerID)).Scan(&priorTx, &priorMember, &priorTrace, &priorAt, &priorAmount)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if priorMember.String != m.ID || -priorAmount != res.Points {
		return false, errs.Coded(errs.Conflict, "external_id_conflict",
			"external_id %q was already credited for a different member or amount", res.ExternalID).With("external_id", res.ExternalID)
	}
	res.TransactionID, res.TraceID, res.CreatedAt = priorTx.String, priorTrace.String, db.FromMicros(priorAt)
	res.NewBalance, res.Replayed = m.Balance, true
	return true, nil
}
