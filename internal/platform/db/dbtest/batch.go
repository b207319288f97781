package dbtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// HoldWriter occupies d's write pipeline with a transaction that waits until
// the returned release is called, so that the InTx calls made meanwhile queue
// up behind it and form one batch. Open d with Batching{Writers: 1} on
// PostgreSQL, or a second writer would take them.
func HoldWriter(t testing.TB, d *db.DB) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- d.InTx(context.Background(), func(context.Context, *db.Tx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("dbtest: the transaction holding the writer: %v", err)
		}
	}
}

// Enqueue runs call in a goroutine counted by wg and returns once call's InTx
// has joined d's write queue, so calls made through Enqueue queue in the
// order it is called.
func Enqueue(t testing.TB, d *db.DB, wg *sync.WaitGroup, call func()) {
	t.Helper()
	before := d.QueuedWrites()
	wg.Go(call)
	for deadline := time.Now().Add(10 * time.Second); d.QueuedWrites() <= before; {
		if time.Now().After(deadline) {
			t.Fatal("dbtest: the call never reached the write queue")
		}
		time.Sleep(100 * time.Microsecond)
	}
}
