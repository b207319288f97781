package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// EraseRecipient clears address (compared without case) from the outbox in
// tx and reports how many messages it cleared: their recipient becomes
// empty, and a message not yet sent is parked as dead, never to be sent.
// The rows stay (verify counts one confirmation per confirmed order); the
// bodies hold the order, not the person.
func EraseRecipient(ctx context.Context, tx *db.Tx, address string) (int64, error) {
	if address == "" {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE outbox SET recipient = '',
		state = CASE WHEN state = 'pending' THEN 'dead' ELSE state END,
		last_error = CASE WHEN state = 'pending' THEN 'recipient erased' ELSE last_error END
		WHERE recipient <> '' AND lower(recipient) = lower($1)`, address)
	if err != nil {
		return 0, fmt.Errorf("notify: erase recipient: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// EraseFiles removes every message FileSender wrote to dir that names
// address (compared without case, anywhere in the file: the To header is
// where FileSender puts it) and reports how many it removed. A missing dir
// holds none.
func EraseFiles(dir, address string) (int, error) {
	if dir == "" || address == "" {
		return 0, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("notify: erase files: %w", err)
	}
	needle := []byte(strings.ToLower(address))
	n := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("notify: erase files: %w", err)
		}
		if !bytes.Contains(bytes.ToLower(b), needle) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("notify: erase files: %w", err)
		}
		n++
	}
	return n, nil
}
