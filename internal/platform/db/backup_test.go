package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
)

// TestBackupWhileWriting copies a SQLite database again and again while
// concurrent writers move amounts between accounts, each move one
// transaction that also appends to a journal. Every copy must be the
// database as of one commit: the accounts still sum to what they started
// with, and each account's balance is exactly its journal's sum.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	src := dbtest.DSN(t, db.SQLite)
	d, err := db.Open(ctx, src, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := db.Migrate(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	const accounts, start = 8, 1000
	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		for _, q := range []string{
			`CREATE TABLE bk_accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)`,
			`CREATE TABLE bk_journal (seq INTEGER PRIMARY KEY, account INTEGER NOT NULL, amount BIGINT NOT NULL)`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		for i := range accounts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO bk_accounts (id, balance) VALUES ($1, $2)`, i, start); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO bk_journal (account, amount) VALUES ($1, $2)`, i, start); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var moves atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from, to := (w+i)%accounts, (w+2*i+1)%accounts
				if from == to {
					continue
				}
				err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
					for _, m := range []struct{ acct, amount int }{{from, -3}, {to, 3}} {
						if _, err := tx.ExecContext(ctx, `UPDATE bk_accounts SET balance = balance + $1 WHERE id = $2`, m.amount, m.acct); err != nil {
							return err
						}
						if _, err := tx.ExecContext(ctx, `INSERT INTO bk_journal (account, amount) VALUES ($1, $2)`, m.acct, m.amount); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errc <- err
					return
				}
				moves.Add(1)
			}
		})
	}

	dir := t.TempDir()
	var copies []string
	for i := range 5 {
		for before := moves.Load(); moves.Load() < before+50; {
			select {
			case err := <-errc:
				t.Fatalf("writer: %v", err)
			default:
			}
		}
		dst := filepath.Join(dir, fmt.Sprintf("copy-%d.db", i))
		res, err := db.BackupSQLite(ctx, src, dst, false)
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		if res.SchemaVersion == 0 || res.Bytes == 0 {
			t.Errorf("backup %d: result %+v", i, res)
		}
		copies = append(copies, dst)
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("writer: %v", err)
	}
	if moves.Load() == 0 {
		t.Fatal("no writes ran during the backups")
	}

	var lastSeq int64
	for _, p := range copies {
		seq := checkBackupConsistent(t, p, accounts*start)
		if seq <= lastSeq {
			t.Errorf("%s: journal ends at %d, not after the previous copy's %d", p, seq, lastSeq)
		}
		lastSeq = seq
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600: a copy holds personal data", p, st.Mode().Perm(), err)
		}
	}
	// A copy opens as a Godwit database: migrated, nothing pending.
	restored, err := db.Open(ctx, copies[len(copies)-1], db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	st, err := db.MigrationStatus(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State != "applied" {
			t.Errorf("restored copy: migration %d is %s", s.Source.Version, s.State)
		}
	}
}

// checkBackupConsistent checks one copy and returns the last journal entry in it.
func checkBackupConsistent(t *testing.T, path string, total int64) int64 {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sum, seq int64
	if err := c.QueryRow(`SELECT SUM(balance) FROM bk_accounts`).Scan(&sum); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if sum != total {
		t.Errorf("%s: accounts sum to %d, want %d: the copy holds half a transaction", path, sum, total)
	}
	var mismatched int
	err = c.QueryRow(`SELECT COUNT(*) FROM bk_accounts a WHERE a.balance <> (SELECT SUM(amount) FROM bk_journal j WHERE j.account = a.id)`).Scan(&mismatched)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if mismatched != 0 {
		t.Errorf("%s: %d accounts disagree with their journal", path, mismatched)
	}
	if err := c.QueryRow(`SELECT MAX(seq) FROM bk_journal`).Scan(&seq); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return seq
}

// TestBackupRefusals: an existing destination needs overwrite, PostgreSQL is
// pointed at its own tools, a missing database is not created, and a failed
// backup leaves nothing behind.
func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	src := dbtest.DSN(t, db.SQLite)
	d, err := db.Open(ctx, src, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := db.Migrate(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "existing.db")
	if err := os.WriteFile(dst, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BackupSQLite(ctx, src, dst, false); !errors.Is(err, db.ErrBackupExists) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("backup over an existing file: %v, want ErrBackupExists naming --force", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep me" {
		t.Errorf("the existing file was changed: %q", b)
	}
	if _, err := db.BackupSQLite(ctx, src, dst, true); err != nil {
		t.Errorf("backup with overwrite: %v", err)
	}
	if b, _ := os.ReadFile(dst); !strings.HasPrefix(string(b), "SQLite format 3") {
		t.Errorf("overwrite did not write a SQLite database")
	}
	if _, err := db.BackupSQLite(ctx, "postgres://u@127.0.0.1:1/db", filepath.Join(dir, "pg.db"), false); !errors.Is(err, db.ErrBackupPostgres) ||
		!strings.Contains(err.Error(), "pg_dump") || !strings.Contains(err.Error(), "docs/operations.md") {
		t.Errorf("PostgreSQL DSN: %v, want ErrBackupPostgres naming pg_dump and the docs", err)
	}
	missing := filepath.Join(dir, "nope", "godwit.db")
	if _, err := db.BackupSQLite(ctx, missing, filepath.Join(dir, "m.db"), false); err == nil {
		t.Error("backup of a missing database succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup created the missing database: %v", err)
	}
	if _, err := db.BackupSQLite(ctx, src, src, true); err == nil {
		t.Error("backup onto the database itself succeeded")
	}
	if _, err := db.BackupSQLite(ctx, src, filepath.Join(dir, "no-such-dir", "x.db"), false); err == nil {
		t.Error("backup into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}
