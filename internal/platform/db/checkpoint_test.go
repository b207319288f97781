package db_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// TestCheckpointsRunInTheBackground: the writer connection never checkpoints
// (a checkpoint inside a commit stalls every writer), so committed pages reach
// the database file only through the background checkpointer — within a
// second or so, while the process keeps running.
func TestCheckpointsRunInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	ctx := context.Background()
	d, err := db.Open(ctx, path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 64<<10)
	for i := range 64 { // 4 MiB over 64 commits
		if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO blobs (id, body) VALUES ($1, $2)`, i, body)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= 4<<20 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes 5 s after 4 MiB was committed: nothing checkpointed it", fi.Size())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
