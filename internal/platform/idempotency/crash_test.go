package idempotency_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// crashChildDSN, when set, makes TestCrashMidBatch the child process that is
// killed in the middle of a batch.
const crashChildDSN = "GODWIT_TEST_CRASH_CHILD_DSN"

// crashRequests is how many keyed requests share the batch that is killed.
const crashRequests = 6

// TestCrashMidBatch kills a process (SIGKILL) after every request of a write
// batch has run but before the batch commits. None of them may be visible
// afterwards — neither effects nor Idempotency-Key claims — and a client
// retrying each with its key applies it exactly once; a second retry replays.
func TestCrashMidBatch(t *testing.T) {
	if dsn := os.Getenv(crashChildDSN); dsn != "" {
		crashChild(t, dsn)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process; skipped in -short mode")
	}
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dsn := dbtest.DSN(t, e)
			d := openCrashDB(t, dsn)
			if err := db.Migrate(context.Background(), d, nil); err != nil {
				t.Fatal(err)
			}
			err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				_, err := tx.ExecContext(ctx, `CREATE TABLE crash_effects (key TEXT NOT NULL)`)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			_ = d.Close()

			child := exec.Command(os.Args[0], "-test.run=^TestCrashMidBatch$", "-test.count=1")
			child.Env = append(os.Environ(), crashChildDSN+"="+dsn)
			out, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			child.Stderr = os.Stderr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if strings.TrimSpace(sc.Text()) == "IN-BATCH" {
						ready <- true
						return
					}
				}
				ready <- false
			}()
			select {
			case ok := <-ready:
				if !ok {
					_ = child.Wait()
					t.Fatal("child ended without reaching the batch")
				}
			case <-time.After(60 * time.Second):
				_ = child.Process.Kill()
				t.Fatal("child never reached the batch")
			}
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()

			d = openCrashDB(t, dsn)
			var effects, claims int
			if err := d.Read().QueryRow(`SELECT COUNT(*) FROM crash_effects`).Scan(&effects); err != nil {
				t.Fatal(err)
			}
			if err := d.Read().QueryRow(`SELECT COUNT(*) FROM idempotency_keys WHERE owner = 'crash'`).Scan(&claims); err != nil {
				t.Fatal(err)
			}
			if effects != 0 || claims != 0 {
				t.Fatalf("after the kill: %d effects and %d key claims visible, want none", effects, claims)
			}

			// Every client retries with its key, twice: one effect each.
			store := idempotency.NewStore(d, idempotency.Options{})
			for round := range 2 {
				var wg sync.WaitGroup
				for i := range crashRequests {
					wg.Add(1)
					go func() {
						defer wg.Done()
						out, err := keyedRequest(context.Background(), d, store, i, nil)
						switch {
						case err != nil:
							t.Errorf("retry %d of request %d: %v", round, i, err)
						case round == 0 && !out.Owned:
							t.Errorf("first retry of request %d was not run: %+v", i, out)
						case round == 1 && (out.Replay == nil || string(out.Replay.Body) != fmt.Sprint("done ", i)):
							t.Errorf("second retry of request %d did not replay: %+v", i, out)
						}
					}()
				}
				wg.Wait()
			}
			rows, err := d.Read().Query(`SELECT key, COUNT(*) FROM crash_effects GROUP BY key`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			seen := 0
			for rows.Next() {
				var key string
				var n int
				if err := rows.Scan(&key, &n); err != nil {
					t.Fatal(err)
				}
				seen++
				if n != 1 {
					t.Errorf("%s applied %d times, want once", key, n)
				}
			}
			if seen != crashRequests {
				t.Errorf("%d requests applied, want %d", seen, crashRequests)
			}
		})
	}
}

func openCrashDB(t *testing.T, dsn string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), dsn, db.Options{Batching: db.Batching{Writers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// keyedRequest is a client's request with Idempotency-Key key-i whose whole
// effect is one row; inBatch, if set, runs inside the request's transaction.
func keyedRequest(ctx context.Context, d *db.DB, store *idempotency.Store, i int, inBatch func()) (idempotency.Outcome, error) {
	return store.Atomically(ctx, "crash", fmt.Sprint("key-", i), "hash", func(ctx context.Context) (idempotency.Response, error) {
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO crash_effects (key) VALUES ($1)`, fmt.Sprint("key-", i))
			return err
		})
		if err != nil {
			return idempotency.Response{}, err
		}
		if inBatch != nil {
			inBatch()
		}
		return idempotency.Response{StatusCode: 201, ContentType: "text/plain", Body: []byte(fmt.Sprint("done ", i))}, nil
	})
}

// crashChild queues crashRequests keyed requests behind a busy writer so that
// they form one batch; the last of them to run says IN-BATCH and waits to be
// killed, before the batch can commit.
func crashChild(t *testing.T, dsn string) {
	d, err := db.Open(context.Background(), dsn, db.Options{Batching: db.Batching{Writers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	store := idempotency.NewStore(d, idempotency.Options{})
	blocked := make(chan struct{})
	go func() {
		_ = d.InTx(context.Background(), func(context.Context, *db.Tx) error {
			close(blocked)
			for d.QueuedWrites() < crashRequests {
				time.Sleep(time.Millisecond)
			}
			return nil
		})
	}()
	<-blocked
	var ran atomic.Int32
	for i := range crashRequests {
		go func() {
			_, _ = keyedRequest(context.Background(), d, store, i, func() {
				if ran.Add(1) == crashRequests {
					fmt.Println("IN-BATCH")
					select {} // killed here, inside the open batch
				}
			})
		}()
	}
	select {}
}
