package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/godwit-dev/godwit/internal/errs"
)

// DefaultMaxBody is the request body limit unless a route sets its own.
const DefaultMaxBody = 1 << 20

// Decode reads one JSON object from r's body into dst. It rejects a wrong
// content type, unknown fields, trailing data, bodies over the route's limit and
// malformed JSON, each with a 4xx error naming the problem.
func Decode(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errs.Coded(errs.Unsupported, "unsupported_media_type", "the request body must be application/json")
		}
	}
	dec := json.NewDecoder(r.Body)
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
	return nil
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
