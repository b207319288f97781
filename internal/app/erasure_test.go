package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/app"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

// dumpTables returns every row of every table as text, one line a row,
// prefixed by the table's name: what the erasure test greps.
func dumpTables(t *testing.T, r *rig) string {
	t.Helper()
	ctx := context.Background()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if r.a.DB.Engine() == db.Postgres {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := r.a.DB.Read().QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 20 {
		t.Fatalf("found only tables %v", tables)
	}
	var b strings.Builder
	for _, table := range tables {
		rs, err := r.a.DB.Read().QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			b.WriteString(table)
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "\t%v", v)
			}
			b.WriteString("\n")
		}
		if err := rs.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		rs.Close()
	}
	return b.String()
}

// filesHolding lists the files under dir whose text holds s (without case).
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(string(b)), strings.ToLower(s)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestErasePersonalData gives a member's address every place Godwit keeps
// one — the member (created with an Idempotency-Key, so the stored response
// holds it too), a member checkout, a guest checkout to the same address in
// other letter case, their queued and delivered confirmations (.eml files)
// — and erases it: afterwards no table and no file under the data directory
// holds the address or the name, another guest's data is untouched, the
// member is a stub with its points, verify is clean, a checkout in progress
// refuses the erasure (409) and a second erasure answers the same and
// changes nothing.
func TestErasePersonalData(t *testing.T) {
	for _, e := range []db.Engine{db.SQLite, db.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			dir := t.TempDir()
			r := newRig(t, rigOptions{engine: e, cfg: app.Config{Demo: true, DataDir: dir}})
			ctx := context.Background()
			const (
				id      = "m-erin"
				name    = "Erin Quillfeather"
				address = "Erin.Quillfeather@example.test"
				other   = "someone.else@example.test"
			)
			svc := r.token(auth.ScopeService, "rig-service")
			admin := r.token(auth.ScopeAdmin, "rig-admin")
			memberTok := r.token(auth.ScopeMember, id)
			r.must("POST", "/v1/members", svc, map[string]any{"id": id, "name": name, "email": address}, idem("enrol"))
			r.must("POST", "/v1/members/"+id+"/activities", svc, flight("erin-pnr", 4000), nil)
			product := firstProduct(r)
			r.buy(memberTok, product, map[string]any{"payment": map[string]any{"token": "tok_visa"}, "email": strings.ToLower(address)})
			guestCheckout(r, product, "tok_visa", strings.ToUpper(address), http.StatusCreated)
			guestCheckout(r, product, "tok_visa", other, http.StatusCreated)
			if _, err := r.a.Outbox.DeliverDue(ctx); err != nil {
				t.Fatal(err)
			}
			// The test can fail: the data is there to erase.
			dump := strings.ToLower(dumpTables(t, r))
			for _, s := range []string{address, name} {
				if !strings.Contains(dump, strings.ToLower(s)) {
					t.Fatalf("before erasure the database does not hold %q", s)
				}
			}
			if n := len(filesHolding(t, dir, address)); n != 2 {
				t.Fatalf("before erasure %d files hold the address, want 2 (.eml of both orders)", n)
			}
			_, m := r.call("GET", "/v1/members/"+id, admin, nil, nil)

			// A checkout in progress refuses the erasure and nothing changes.
			t0 := db.Micros(time.Now())
			exec(t, r, `INSERT INTO checkouts (id, cart_id, member_id, email, request_hash, state, step, lease_until, created_at, updated_at)
				VALUES ('co_running', 'cart_x', $1, '', 'h', 'in_progress', 'charging', $2, $2, $2)`, id, t0)
			if code, p := r.call("DELETE", "/v1/admin/members/"+id+"/personal-data", admin, nil, nil); code != http.StatusConflict || p["code"] != "checkout_in_progress" {
				t.Fatalf("erasure during a checkout: %d %v, want 409 checkout_in_progress", code, p)
			}
			if got := strings.ToLower(dumpTables(t, r)); !strings.Contains(got, strings.ToLower(address)) {
				t.Fatal("a refused erasure erased")
			}
			exec(t, r, `UPDATE checkouts SET state = 'failed' WHERE id = 'co_running'`)

			if code, raw, _ := r.raw("DELETE", "/v1/admin/members/"+id+"/personal-data", admin, nil, nil); code != http.StatusNoContent {
				t.Fatalf("erase: %d %s", code, raw)
			}
			dump = strings.ToLower(dumpTables(t, r))
			for _, s := range []string{address, name} {
				for _, line := range strings.Split(dump, "\n") {
					if strings.Contains(line, strings.ToLower(s)) {
						t.Errorf("after erasure a row still holds %q: %.300s", s, line)
					}
				}
			}
			if !strings.Contains(dump, other) {
				t.Error("the other guest's address was erased too")
			}
			if files := filesHolding(t, dir, address); len(files) != 0 {
				t.Errorf("files still hold the address: %v", files)
			}
			if files := filesHolding(t, dir, other); len(files) != 1 {
				t.Errorf("the other guest's confirmation: %v, want its one file kept", files)
			}
			code, after := r.call("GET", "/v1/members/"+id, admin, nil, nil)
			if code != http.StatusOK || after["name"] != "" || after["email"] != "" || after["erased_at"] == nil ||
				after["balance"] != m["balance"] || after["tier"] != m["tier"] {
				t.Errorf("the erased member: %d %v, want a stub with name and email empty, erased_at, balance %v", code, after, m["balance"])
			}
			requireVerified(t, r.a, time.Hour)
			if n := count(t, r, `SELECT COUNT(*) FROM loyalty_member_audit WHERE member_id = $1 AND action = 'erase' AND actor = 'admin:rig-admin'`, id); n != 1 {
				t.Errorf("%d erase audit records by admin:rig-admin, want 1", n)
			}

			// A second erasure answers the same and changes nothing.
			snapshot := dumpTables(t, r)
			if code, raw, _ := r.raw("DELETE", "/v1/admin/members/"+id+"/personal-data", admin, nil, nil); code != http.StatusNoContent {
				t.Fatalf("second erase: %d %s", code, raw)
			}
			if again := dumpTables(t, r); again != snapshot {
				t.Error("the second erasure changed the database")
			}
			if code, p := r.call("DELETE", "/v1/admin/members/nobody/personal-data", admin, nil, nil); code != http.StatusNotFound || p["code"] != "member_not_found" {
				t.Errorf("erasure of an unknown member: %d %v", code, p)
			}
			// The stub still earns: erasure removes the person, not the account.
			r.must("POST", "/v1/members/"+id+"/activities", svc, flight("erin-pnr-2", 1000), nil)
			requireVerified(t, r.a, time.Hour)
		})
	}
}
