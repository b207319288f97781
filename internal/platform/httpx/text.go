package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/cardnum"
)

// CodeCardDataRejected is the error code (422) for a request that carries what
// looks like a card number anywhere: a decoded JSON string or number, a path
// or a query parameter. Godwit never takes card data; clients send a payment
// provider's token.
const CodeCardDataRejected = "card_data_rejected"

func cardRejected() *errs.Error {
	return errs.Coded(errs.Unprocessable, CodeCardDataRejected,
		"the request contains what looks like a card number; send a payment token from the payment provider instead")
}

// checkText refuses one decoded request value: text no store can keep (a NUL
// byte, invalid UTF-8) and card numbers. The value itself is never echoed.
func checkText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return errs.Coded(errs.Invalid, CodeInvalidText, "%s must be UTF-8 text without NUL bytes", field).With("field", field)
	}
	if cardnum.Contains(s) {
		return cardRejected()
	}
	return nil
}

// checkBody checks every string (keys included) and number of a JSON body as
// the decoder will see it — after \u escapes are resolved — so an escaped
// card number or NUL cannot slip past a look at the raw bytes. Malformed JSON
// ends the walk; Decode then reports it.
func checkBody(raw []byte) error {
	if !utf8.Valid(raw) {
		// The decoder would silently turn invalid bytes into U+FFFD.
		return errs.Coded(errs.Invalid, CodeInvalidText, "the request body must be UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var (
		inObject []bool // per open container: is it an object?
		wantKey  bool
		field    = "body"
	)
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				inObject, wantKey = append(inObject, t == '{'), t == '{'
				continue
			}
			// A closed container was a value: in an object, a key comes next.
			inObject = inObject[:max(len(inObject)-1, 0)]
			wantKey = len(inObject) > 0 && inObject[len(inObject)-1]
			continue
		case string:
			if wantKey {
				field = t
			}
			if err := checkText(field, t); err != nil {
				return err
			}
		case json.Number:
			if cardnum.Contains(string(t)) {
				return cardRejected()
			}
		}
		// After a key comes its value; after a value in an object, a key.
		wantKey = len(inObject) > 0 && inObject[len(inObject)-1] && !wantKey
	}
}

// checkURL checks the decoded path (every path parameter is a part of it) and
// every query parameter, before any route sees them.
func checkURL(r *http.Request) error {
	if cardSeen(r.Context()) {
		return cardRejected()
	}
	if err := checkText("path", r.URL.Path); err != nil {
		return err
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errs.Coded(errs.Invalid, "invalid_query", "the query string is malformed")
	}
	for name, vs := range q {
		if err := checkText("query parameter", name); err != nil {
			return err
		}
		for _, v := range vs {
			if err := checkText(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

type cardSeenKey struct{}

func cardSeen(ctx context.Context) bool { return ctx.Value(cardSeenKey{}) != nil }

// RedactCardNumbers wraps the handler that records requests (otelhttp): a
// card-like number in the path is replaced by a placeholder, and a query
// holding one is dropped, before anything records url.path or names a span
// after it. The request is marked, so API answers it 422 card_data_rejected
// as it would have answered the unredacted request.
func RedactCardNumbers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query, _ := url.QueryUnescape(r.URL.RawQuery)
		pathCard, queryCard := cardnum.Contains(r.URL.Path), cardnum.Contains(query) || cardnum.Contains(r.URL.RawQuery)
		if !pathCard && !queryCard {
			next.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), cardSeenKey{}, true))
		u := *r.URL
		u.Path, u.RawPath = cardnum.Redact(u.Path), ""
		if queryCard {
			u.RawQuery = ""
		}
		r.URL, r.RequestURI = &u, u.RequestURI()
		next.ServeHTTP(w, r)
	})
}

// loggable makes a request-derived string safe for a log line or span: card
// numbers redacted, control characters and invalid UTF-8 replaced.
func loggable(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return '?'
		}
		return c
	}, cardnum.Redact(s))
}
