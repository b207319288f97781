package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

const (
	// checkpointEvery is how often the checkpointer copies committed WAL
	// pages back into the database file.
	checkpointEvery = 250 * time.Millisecond
	// walRestartPages: when a passive checkpoint leaves the WAL longer than
	// this (about 64 MiB of 4 KiB pages; long-lived readers can keep it from
	// being reused), the checkpointer waits for readers and resets it, so the
	// file cannot grow without bound. Writers wait on the busy timeout meanwhile.
	walRestartPages = 16384
)

// checkpointer runs SQLite WAL checkpoints off the write path, on a
// connection of its own, so commits never stop to copy pages and fsync.
type checkpointer struct {
	conn   *sql.DB
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startCheckpointer(dsn string, every time.Duration) (*checkpointer, error) {
	conn, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("db: open sqlite checkpointer: %w", err)
	}
	conn.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{conn: conn, cancel: cancel}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = c.checkpoint(ctx)
			}
		}
	}()
	return c, nil
}

// checkpoint copies what it can without waiting for anyone (PASSIVE), and
// resets an overlong WAL (RESTART).
func (c *checkpointer) checkpoint(ctx context.Context) error {
	var busy, walPages, copied int
	if err := c.conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &walPages, &copied); err != nil {
		return err
	}
	if walPages > walRestartPages {
		return c.conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &walPages, &copied)
	}
	return nil
}

// stop ends the loop, checkpoints once more and closes the connection.
func (c *checkpointer) stop() error {
	c.cancel()
	c.done.Wait()
	_ = c.checkpoint(context.Background())
	return c.conn.Close()
}
