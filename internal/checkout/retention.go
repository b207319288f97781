package checkout

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// ScrubFailed clears the personal data (the guest's email) of up to limit
// failed checkouts last changed before cutoff and reports how many it
// scrubbed: one batch of the retention job. The row stays, for accounting,
// verify and a replay of the same Idempotency-Key (which answers the stored
// failure, not the email); no check reads a failed checkout's email, and a
// completed checkout's order keeps its own. Only failed checkouts qualify:
// the state is terminal, so the scrub never races the saga or recovery, and
// the condition repeated on the updated rows makes replicas scrub each once.
func (s *Service) ScrubFailed(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	var n int64
	err := s.cfg.DB.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE checkouts SET email = '' WHERE `+scrubbable+` AND id IN (
			SELECT id FROM checkouts WHERE `+scrubbable+` ORDER BY updated_at LIMIT $2)`, db.Micros(cutoff), limit)
		if err != nil {
			return fmt.Errorf("checkout: scrub failed checkouts: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// scrubbable is a failed checkout past retention at cutoff $1 that still
// holds an email (migration 00045's partial index holds exactly these).
const scrubbable = `state = 'failed' AND email <> '' AND updated_at < $1`
