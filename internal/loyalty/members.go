package loyalty

import (
	"context"
	"database/sql"
	"errors"
	"github.com/godwit-dev/godwit/internal/events"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/ledger"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// Member is a loyalty member as the service sees it.
type Member struct {
	ID    string
	Name  string
	Email string // never put on spans, logs or metrics
	Tier  string
	// Balance is spendable; Pending is reserved by pending holds. The member's
	// ledger account holds Balance + Pending.
	Balance, Pending int64
	// StatusPoints are the tier-qualifying points of StatusYear.
	StatusPoints   int64
	StatusYear     int
	LastActivityAt time.Time // zero: none yet
	CreatedAt      time.Time
	// ErasedAt is when the member's personal data was erased (zero: never):
	// Name and Email are empty from then on (erasure.go).
	ErasedAt time.Time
}

// NewMember is the input of CreateMember.
type NewMember struct {
	ID    string // optional; generated when empty
	Name  string
	Email string
}

var memberIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (n NewMember) validate() error {
	if n.ID != "" && !memberIDPattern.MatchString(n.ID) {
		return errs.Coded(errs.Unprocessable, "invalid_member_id", "id must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit").With("field", "id")
	}
	if strings.TrimSpace(n.Name) == "" || utf8.RuneCountInString(n.Name) > 200 {
		return errs.Coded(errs.Unprocessable, "invalid_name", "name is required and at most 200 characters").With("field", "name")
	}
	at := strings.LastIndexByte(n.Email, '@')
	if len(n.Email) > 254 || at < 1 || at == len(n.Email)-1 || strings.ContainsAny(n.Email, " \t\r\n") {
		return errs.Coded(errs.Unprocessable, "invalid_email", "email must be an address like name@example.com").With("field", "email")
	}
	return nil
}

// Codes of the member errors, compared by callers (errs.Is).
const (
	// CodeMemberNotFound is the code (NotFound) when no member has the id.
	CodeMemberNotFound = "member_not_found"
	// CodeMemberExists is the code (Conflict) when CreateMember is given an
	// id that is taken.
	CodeMemberExists = "member_exists"
)

// CreateMember enrols a member in the lowest tier with a zero balance. A
// given id that is taken is errs Conflict CodeMemberExists.
func (s *Service) CreateMember(ctx context.Context, n NewMember) (Member, error) {
	n.Name = strings.TrimSpace(n.Name)
	n.Email = strings.TrimSpace(n.Email)
	if err := n.validate(); err != nil {
		return Member{}, err
	}
	if n.ID == "" {
		n.ID = newID()
	}
	now := s.now().UTC()
	m := Member{
		ID: n.ID, Name: n.Name, Email: n.Email, Tier: s.prog.LowestTier().ID,
		StatusYear: now.Year(), CreatedAt: now,
	}
	evs, err := s.event(ctx, events.MemberCreated, m.ID, now, events.MemberCreatedData{MemberID: m.ID, Tier: m.Tier})
	if err != nil {
		return Member{}, internal("create member", err)
	}
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO loyalty_members
			(id, name, email, tier, balance, held, status_points, status_year, requalified_year, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 0, 0, 0, $5, $6, $7, $7)`,
			m.ID, m.Name, m.Email, m.Tier, m.StatusYear, m.StatusYear-1, db.Micros(now))
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, evs...)
	})
	if err != nil {
		if db.IsUniqueViolation(err) {
			return Member{}, errs.Coded(errs.Conflict, CodeMemberExists, "a member with id %q already exists", n.ID).With("member_id", n.ID)
		}
		return Member{}, internal("create member", err)
	}
	return m, nil
}

// memberColumnNames are the columns scanMember reads, in its order.
var memberColumnNames = []string{"id", "name", "email", "tier", "balance", "held", "status_points", "status_year", "last_activity_at", "created_at", "merged_into", "erased_at"}

// memberColumns is the column list scanMember reads, each qualified with
// alias when the query names loyalty_members so ("m"), or bare ("").
func memberColumns(alias string) string {
	if alias == "" {
		return strings.Join(memberColumnNames, ", ")
	}
	return alias + "." + strings.Join(memberColumnNames, ", "+alias+".")
}

// memberHolder reads the member into m in the statement that reads a hold
// (loyalty_members aliased alias).
func memberHolder(m *Member, alias string) ledger.Holder {
	return ledger.Holder{Columns: memberColumns(alias), Scan: func(row ledger.Scanner, hold ...any) (err error) {
		*m, err = scanMember(row, hold...)
		return err
	}}
}

// memberErr turns the ledger's "no such member" into the client's error.
func memberErr(err error, id string) error {
	if errors.Is(err, ledger.ErrMemberNotFound) {
		return memberNotFound(id)
	}
	return err
}

type rowScanner interface{ Scan(dest ...any) error }

func scanMember(r rowScanner, extra ...any) (Member, error) {
	var (
		m          Member
		last       sql.NullInt64
		created    int64
		mergedInto string
		erased     int64
	)
	dest := append([]any{&m.ID, &m.Name, &m.Email, &m.Tier, &m.Balance, &m.Pending, &m.StatusPoints, &m.StatusYear, &last, &created, &mergedInto, &erased}, extra...)
	if err := r.Scan(dest...); err != nil {
		return Member{}, err
	}
	if mergedInto != "" {
		// Every read of a member goes through here, so a merged member
		// answers 410 on every route and takes no points (merge.go).
		return Member{}, memberMerged(m.ID, mergedInto)
	}
	if erased != 0 {
		m.ErasedAt = db.FromMicros(erased)
	}
	if last.Valid {
		m.LastActivityAt = db.FromMicros(last.Int64)
	}
	m.CreatedAt = db.FromMicros(created)
	return m, nil
}

func memberNotFound(id string) error {
	return errs.Coded(errs.NotFound, CodeMemberNotFound, "no member with id %q", id).With("member_id", id)
}

// GetMember returns a member. Status points of a past year read as zero for
// the current year (the rollover is written by the member's next activity).
func (s *Service) GetMember(ctx context.Context, id string) (Member, error) {
	m, err := scanMember(s.db.Read().QueryRowContext(ctx, `SELECT `+memberColumns("")+` FROM loyalty_members WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, memberNotFound(id)
	}
	if err != nil {
		return Member{}, internal("get member", err)
	}
	s.rollStatusYear(&m, s.now())
	return m, nil
}

// rollStatusYear starts a new status year when now is in a later calendar
// year (UTC) than the member's status year. The tier is kept: a tier earned
// in one year holds through the next, and re-qualification is the year-end
// job's business, not earning's.
func (s *Service) rollStatusYear(m *Member, now time.Time) {
	if y := now.UTC().Year(); y > m.StatusYear {
		m.StatusYear, m.StatusPoints = y, 0
	}
}

// lockMember reads a member and locks its row until the transaction ends.
func lockMember(ctx context.Context, tx *db.Tx, id string) (Member, error) {
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns("")+` FROM loyalty_members WHERE id = $1`+tx.ForUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, memberNotFound(id)
	}
	return m, err
}

// lockedMember is a transaction body that locks member id's row and runs fn
// with the member: the storage side owns the transaction and the lock, fn
// decides and books.
func lockedMember(id string, fn func(ctx context.Context, tx *db.Tx, m Member) error) func(ctx context.Context, tx *db.Tx) error {
	return func(ctx context.Context, tx *db.Tx) error {
		m, err := lockMember(ctx, tx, id)
		if err != nil {
			return err
		}
		return fn(ctx, tx, m)
	}
}

// updateMember runs fn in a transaction holding member id's row lock (see
// lockedMember).
func (s *Service) updateMember(ctx context.Context, id string, fn func(ctx context.Context, tx *db.Tx, m Member) error) error {
	return s.db.InTx(ctx, lockedMember(id, fn))
}

// NextTierProgress says how far a member is from the next tier.
type NextTierProgress struct {
	Tier         string `json:"tier"`
	Threshold    int64  `json:"threshold"`
	PointsNeeded int64  `json:"points_needed"`
}

// NextTier returns the member's progress to the tier above theirs, or nil at the top.
func (s *Service) NextTier(m Member) *NextTierProgress {
	cur, ok := s.prog.Tier(m.Tier)
	if !ok {
		cur = s.prog.TierFor(m.StatusPoints)
	}
	next, ok := s.prog.NextTier(cur)
	if !ok {
		return nil
	}
	return &NextTierProgress{Tier: next.ID, Threshold: next.Threshold, PointsNeeded: max(next.Threshold-m.StatusPoints, 0)}
}
