package loyalty_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/loyalty"
	"github.com/godwit-dev/godwit/internal/platform/auth"
)

// doKey is do with an Idempotency-Key header.
func (e *env) doKey(t testing.TB, method, path, tok, key string, body any) resp {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, raw: out}
}

func (e *env) memberTok(t testing.TB, id string) string { return e.token(t, auth.ScopeMember, id) }

// fund gives a member points by an adjustment (no status points).
func (e *env) fund(t testing.TB, id string, points int64) {
	t.Helper()
	if _, err := e.svc.Adjust(context.Background(), id, points, "test funding"); err != nil {
		t.Fatalf("fund %s: %v", id, err)
	}
}

func (e *env) pendingHolds(t testing.TB) int64 {
	t.Helper()
	return e.count(t, `SELECT COUNT(*) FROM loyalty_holds WHERE status = 'pending'`)
}

// wantCode fails unless err carries the code.
func wantCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if errs.CodeOf(err) != code {
		t.Errorf("%s: error %v (code %s), want code %s", what, err, errs.CodeOf(err), code)
	}
}

func (e *env) lotsOf(t testing.TB, id string) []int64 {
	t.Helper()
	rows, err := e.d.Read().QueryContext(context.Background(), `SELECT remaining FROM loyalty_lots WHERE member_id = $1 ORDER BY expires_at, earned_at, id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

var _ = loyalty.TxEarn
