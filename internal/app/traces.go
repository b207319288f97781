package app

import (
	"net/http"
	"strconv"
	"time"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/telemetry"
)

// recentFilter reads ?name=&errors=true&min_ms=&limit= for the recent-trace list.
func recentFilter(r *http.Request) (telemetry.RecentFilter, error) {
	q := r.URL.Query()
	f := telemetry.RecentFilter{SpanName: q.Get("name")}
	if v := q.Get("errors"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, errs.Coded(errs.Invalid, "invalid_query", "errors must be true or false").With("field", "errors")
		}
		f.ErrorsOnly = b
	}
	if v := q.Get("min_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return f, errs.Coded(errs.Invalid, "invalid_query", "min_ms must be a non-negative integer").With("field", "min_ms")
		}
		f.MinDuration = time.Duration(ms) * time.Millisecond
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, errs.Coded(errs.Invalid, "invalid_query", "limit must be between 1 and 500").With("field", "limit")
		}
		f.Limit = n
	}
	return f, nil
}
