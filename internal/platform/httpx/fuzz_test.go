package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/db"
	"github.com/godwit-dev/godwit/internal/platform/db/dbtest"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
	"github.com/godwit-dev/godwit/internal/platform/idempotency"
)

// fzBody has one field of each JSON kind Decode must map.
type fzBody struct {
	Name   string            `json:"name"`
	Amount int64             `json:"amount"`
	Ratio  float64           `json:"ratio"`
	OK     *bool             `json:"ok"`
	Tags   []string          `json:"tags"`
	Meta   map[string]string `json:"meta"`
	Inner  *struct {
		Qty uint8 `json:"qty"`
	} `json:"inner"`
}

func fzAPI(tb testing.TB, idem *idempotency.Store, routes ...httpx.Route) *httpx.API {
	tb.Helper()
	keys, err := auth.NewKeys([]byte("fuzz-secret-fuzz-secret-fuzz-sec"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	api := httpx.NewAPI(keys, idem, nil)
	api.Add(routes...)
	return api
}

// checkProblem asserts an error answer is a problem document with a code.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("%d with content type %q", rec.Code, ct)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p["code"] == "" || p["code"] == nil {
		t.Fatalf("%d with a body that is not a problem: %s", rec.Code, rec.Body)
	}
}

// FuzzDecode sends arbitrary bodies and content types through a route that
// decodes with httpx.Decode under a small body limit: the answer is 200 for a
// single JSON object the struct accepts, a 422 card_data_rejected problem for
// a body holding what looks like a card number, and otherwise a 400, 413 or
// 415 problem — never a 5xx or a panic.
func FuzzDecode(f *testing.F) {
	api := fzAPI(f, nil, httpx.Route{Method: "POST", Pattern: "/v1/fz", Access: auth.Public, MaxBody: 512,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var b fzBody
			if err := httpx.Decode(r, &b); err != nil {
				return err
			}
			httpx.WriteJSON(w, http.StatusOK, b)
			return nil
		}})
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"name":"a","amount":1,"ratio":0.5,"ok":true,"tags":["x"],"meta":{"k":"v"},"inner":{"qty":3}}`},
		{"", `{}`},
		{"application/problem+json; charset=utf-8", `{"name":"x"}`},
		{"text/plain", `{}`},
		{"application/json; charset=", `{}`},
		{"application/json", ``},
		{"application/json", `{"amount":1e400}`},
		{"application/json", `{"amount":9223372036854775808}`},
		{"application/json", `{"inner":{"qty":256}}`},
		{"application/json", `{"unknown":1}`},
		{"application/json", `{} {}`},
		{"application/json", `{"name":"\ud800"}`},
		{"application/json", `[1,2]`},
		{"application/json", `null`},
		{"application/json", `{"tags":` + strings.Repeat("[", 300) + `}`},
		{"application/json", `{"name":"` + strings.Repeat("a", 600) + `"}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req := httptest.NewRequest("POST", "/v1/fz", bytes.NewReader(body))
		req.Header["Content-Type"] = []string{contentType}
		if contentType == "" {
			delete(req.Header, "Content-Type")
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			if !json.Valid(body) || len(body) > 512 {
				t.Fatalf("accepted a body that is not one JSON value within the limit: %q", body)
			}
		case 400, 413, 415:
			checkProblem(t, rec)
		case 422:
			// What looks like a card number is refused as soon as the decoder
			// reads it, even in a body that turns out not to be valid JSON.
			checkProblem(t, rec)
			var p struct{ Code string }
			_ = json.Unmarshal(rec.Body.Bytes(), &p) // checkProblem parsed it
			if p.Code != httpx.CodeCardDataRejected {
				t.Fatalf("422 %q for %q %q", p.Code, contentType, body)
			}
		default:
			t.Fatalf("status %d for %q %q: %s", rec.Code, contentType, body, rec.Body)
		}
	})
}

// FuzzIdempotencyKey drives the Idempotency-Key middleware with arbitrary keys
// and bodies, each request sent twice. An invalid key is refused with 400
// before the handler runs and leaves no record; a valid key runs the handler
// at most once and the retry replays the first answer byte for byte.
//
// The store runs on SQLite in the test's temporary directory (run it with
// TMPDIR=/dev/shm for a database in memory). Every purgeEvery inputs the
// store's own retention purge empties the table: left to grow, a million
// inputs' records made every lookup by key alone (the primary key is
// (owner, key)) a scan of the whole table, and the run fell from about 600
// to 30 inputs/s.
func FuzzIdempotencyKey(f *testing.F) {
	const purgeEvery = 1000
	d := dbtest.New(f, db.SQLite)
	store := idempotency.NewStore(d, idempotency.Options{})
	var inputs atomic.Int64
	var effects atomic.Int64
	api := fzAPI(f, store, httpx.Route{Method: "POST", Pattern: "/v1/fzpay", Access: auth.Public, Idempotency: httpx.IdempotencyRequired,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var b struct {
				Amount int64 `json:"amount"`
			}
			if err := httpx.Decode(r, &b); err != nil {
				return err
			}
			httpx.WriteJSON(w, http.StatusCreated, map[string]any{"effect": effects.Add(1), "amount": b.Amount})
			return nil
		}})
	for _, s := range []struct{ key, body string }{
		{"k-1", `{"amount":5}`}, {"", `{"amount":5}`}, {"has space", `{}`}, {"tab\tkey", `{}`}, {"é", `{}`},
		{"k\r\nX-Injected: 1", `{}`}, {strings.Repeat("k", 255), `{"amount":1}`}, {strings.Repeat("k", 256), `{}`},
		{"k-bad-body", `{"amount":"x"}`}, {"k-1", `{"amount":6}`}, {"k-empty", ``},
	} {
		f.Add(s.key, []byte(s.body))
	}
	send := func(key string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/fzpay", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header["Idempotency-Key"] = []string{key}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec
	}
	records := func(t *testing.T, key string) int {
		var n int
		if err := d.Read().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM idempotency_keys WHERE key = $1`, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	f.Fuzz(func(t *testing.T, key string, body []byte) {
		if inputs.Add(1)%purgeEvery == 0 {
			// Between inputs nothing is in progress: every record is done.
			if _, err := store.Purge(context.Background(), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		before := effects.Load()
		first := send(key, body)
		second := send(key, body)
		ran := effects.Load() - before
		if first.Code >= 500 || second.Code >= 500 {
			t.Fatalf("5xx for key %q: %d %s / %d %s", key, first.Code, first.Body, second.Code, second.Body)
		}
		if idempotency.ValidateKey(key) != nil {
			if first.Code != 400 || second.Code != 400 || ran != 0 {
				t.Fatalf("invalid key %q: %d, %d, handler ran %d times", key, first.Code, second.Code, ran)
			}
			checkProblem(t, first)
			if records(t, key) != 0 {
				t.Fatalf("invalid key %q left a record", key)
			}
			return
		}
		if ran > 1 {
			t.Fatalf("key %q: the handler ran %d times", key, ran)
		}
		if first.Code != second.Code || !bytes.Equal(first.Body.Bytes(), second.Body.Bytes()) {
			t.Fatalf("key %q: the retry differs: %d %s / %d %s", key, first.Code, first.Body, second.Code, second.Body)
		}
		if first.Code != 422 && second.Header().Get("Idempotency-Replayed") != "true" {
			t.Fatalf("key %q: the retry was not a replay (%d)", key, second.Code)
		}
	})
}
