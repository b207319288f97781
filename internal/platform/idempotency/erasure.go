package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/godwit-dev/godwit/internal/platform/db"
)

// ErasePersonalData redacts a person's data from stored responses, in tx:
// every record whose body holds address (compared without case) has each
// JSON string equal to address or to one of names (compared without case)
// replaced by "", or, when the body is not JSON, every occurrence of
// address removed. It reports how many records it changed. The record
// stays, so a replay of its key still answers (without the data); its
// request hash is a one-way digest and stays too.
func ErasePersonalData(ctx context.Context, tx *db.Tx, address string, names ...string) (int64, error) {
	if address == "" {
		return 0, nil
	}
	// The engines differ only in how a body (BLOB, BYTEA) is searched as text.
	contains := `instr(lower(CAST(body AS TEXT)), lower($1)) > 0`
	if tx.Dialect().WritableCTEs() {
		contains = `strpos(lower(encode(body, 'escape')), lower($1)) > 0`
	}
	rows, err := tx.QueryContext(ctx, `SELECT owner, key, body FROM idempotency_keys WHERE body IS NOT NULL AND `+contains, address)
	if err != nil {
		return 0, fmt.Errorf("idempotency: erase personal data: %w", err)
	}
	type record struct {
		owner, key string
		body       []byte
	}
	var found []record
	for rows.Next() {
		var r record
		if err := rows.Scan(&r.owner, &r.key, &r.body); err != nil {
			rows.Close()
			return 0, fmt.Errorf("idempotency: erase personal data: %w", err)
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, fmt.Errorf("idempotency: erase personal data: %w", err)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	values := append([]string{address}, names...)
	for _, r := range found {
		body := redact(r.body, values)
		if _, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET body = $3 WHERE owner = $1 AND key = $2`, r.owner, r.key, body); err != nil {
			return 0, fmt.Errorf("idempotency: erase personal data: %w", err)
		}
	}
	return int64(len(found)), nil
}

// redact returns body without values (see ErasePersonalData); values[0] is
// the address searched for.
func redact(body []byte, values []string) []byte {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil {
		v = redactJSON(v, values)
		if out, err := json.Marshal(v); err == nil && !bytes.Contains(bytes.ToLower(out), []byte(strings.ToLower(values[0]))) {
			return out
		}
	}
	return regexp.MustCompile(`(?i)`+regexp.QuoteMeta(values[0])).ReplaceAll(body, nil)
}

func redactJSON(v any, values []string) any {
	switch t := v.(type) {
	case string:
		for _, s := range values {
			if s != "" && strings.EqualFold(strings.TrimSpace(t), s) {
				return ""
			}
		}
		if strings.Contains(strings.ToLower(t), strings.ToLower(values[0])) {
			return ""
		}
		return t
	case []any:
		for i := range t {
			t[i] = redactJSON(t[i], values)
		}
		return t
	case map[string]any:
		for k := range t {
			t[k] = redactJSON(t[k], values)
		}
		return t
	}
	return v
}
