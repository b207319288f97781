// Package eventstest helps tests check emitted events: it validates them
// against the catalogue's JSON Schemas and reads them from the events table.
package eventstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/godwit-dev/godwit/internal/events"
	"github.com/godwit-dev/godwit/internal/platform/db"
)

var (
	once     sync.Once
	compiled map[string]*jsonschema.Schema
	compErr  error
)

func schemas() (map[string]*jsonschema.Schema, error) {
	once.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		compiled = map[string]*jsonschema.Schema{}
		for _, t := range events.Types {
			raw, err := events.Schemas.ReadFile(events.SchemaPath(t))
			if err != nil {
				compErr = fmt.Errorf("schema of %s: %w", t, err)
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				compErr = fmt.Errorf("schema of %s: %w", t, err)
				return
			}
			url := "mem:///" + t + ".schema.json"
			if err := c.AddResource(url, doc); err != nil {
				compErr = fmt.Errorf("schema of %s: %w", t, err)
				return
			}
			s, err := c.Compile(url)
			if err != nil {
				compErr = fmt.Errorf("schema of %s: %w", t, err)
				return
			}
			compiled[t] = s
		}
	})
	return compiled, compErr
}

// Validate checks the CloudEvents JSON form of e against its type's schema.
func Validate(e events.Event) error {
	all, err := schemas()
	if err != nil {
		return err
	}
	s, ok := all[e.Type]
	if !ok {
		return fmt.Errorf("event %s: type %q is not in the catalogue", e.ID, e.Type)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return ValidateJSON(s, raw)
}

// ValidateJSON validates a CloudEvents JSON document against s.
func ValidateJSON(s *jsonschema.Schema, raw []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

// Schema returns the compiled schema of type t.
func Schema(t string) (*jsonschema.Schema, error) {
	all, err := schemas()
	if err != nil {
		return nil, err
	}
	s, ok := all[t]
	if !ok {
		return nil, fmt.Errorf("no schema for %q", t)
	}
	return s, nil
}

// All returns every event in the events table, in time order, each checked
// against its schema (a failure fails t).
func All(t testing.TB, d *db.DB) []events.Event {
	t.Helper()
	var out []events.Event
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+events.Columns+` FROM events ORDER BY time, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		out = out[:0]
		for rows.Next() {
			e, err := events.Scan(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	for _, e := range out {
		if err := Validate(e); err != nil {
			t.Errorf("event %s (%s) does not match its schema: %v", e.ID, e.Type, err)
		}
	}
	return out
}

// OfType returns the events of type typ among evs.
func OfType(evs []events.Event, typ string) []events.Event {
	var out []events.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Data decodes e's data into a value of type T.
func Data[T any](t testing.TB, e events.Event) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("event %s (%s): data: %v", e.ID, e.Type, err)
	}
	return v
}
