package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/godwit-dev/godwit/internal/errs"
)

// DefaultMaxBody is the request body limit unless a route sets its own.
const DefaultMaxBody = 1 << 20

// Decode reads one JSON object from r's body into dst. It rejects a wrong
// content type, unknown fields, trailing data, bodies over the route's limit and
// malformed JSON, each with a 4xx error naming the problem; and, looking at
// every decoded string and number, text no store can keep (400 invalid_text)
// and card numbers (422 card_data_rejected).
func Decode(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errs.Coded(errs.Unsupported, "unsupported_media_type", "the request body must be application/json")
		}
	}
	raw, err := io.ReadAll(r.Body) // bounded by the route's MaxBytesReader
	if err != nil {
		return decodeError(err)
	}
	if err := checkBody(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeError(err)
		}
		return errs.Coded(errs.Invalid, "invalid_json", "the request body must hold a single JSON value")
	}
	return exactKeys(raw, reflect.TypeOf(dst))
}

func decodeError(err error) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooBig    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return errs.Coded(errs.TooLarge, "body_too_large", "the request body is larger than %d bytes", tooBig.Limit).With("limit_bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return errs.Coded(errs.Invalid, "invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return errs.Coded(errs.Invalid, "invalid_json", "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.Coded(errs.Invalid, "invalid_json", "the JSON body ends unexpectedly")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return errs.Coded(errs.Invalid, "invalid_json", "the body must be a JSON %s", typeErr.Type.Kind())
		}
		return errs.Coded(errs.Invalid, "invalid_field", "field %q must be of type %s", field, jsonType(typeErr.Type.Kind().String())).With("field", field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errs.Coded(errs.Invalid, "unknown_field", "unknown field %q", field).With("field", field)
	}
	return errs.Coded(errs.Invalid, "invalid_json", "the request body is not valid JSON").Wrap(fmt.Errorf("decode: %w", err))
}

func jsonType(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct", "ptr":
		return "object"
	}
	return goKind
}

// CodeInvalidText is the error code (400, with "field") when a path parameter,
// query parameter or JSON string holds a NUL byte or invalid UTF-8: no store
// can keep such text (PostgreSQL refuses both), so it is refused at the edge.
const CodeInvalidText = "invalid_text"
