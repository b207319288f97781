package telemetry

import (
	"context"
	"errors"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// NewLogHandler wraps next so that every record logged with a context holding a valid span carries
// trace_id and span_id: that is what lets an operator jump from a log line to its trace. Log with
// the *Context methods (InfoContext, ErrorContext, …) or the ids cannot be found.
//
// The ids are record attributes, so on a logger that has opened a group with WithGroup they are
// nested in that group, like any other attribute.
func NewLogHandler(next slog.Handler) slog.Handler {
	return traceHandler{next: next}
}

type traceHandler struct{ next slog.Handler }

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
		)
	}
	return h.next.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{next: h.next.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{next: h.next.WithGroup(name)}
}

// fanoutHandler sends each record to several handlers (local output and the OTLP bridge). The
// level is checked here once because the bridge itself accepts every level.
type fanoutHandler struct {
	level    slog.Leveler
	handlers []slog.Handler
}

func (f fanoutHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < f.level.Level() {
		return false
	}
	for _, h := range f.handlers {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanoutHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f.handlers {
		if h.Enabled(ctx, r.Level) {
			// Each handler may add attributes; a shared Record must not be modified twice.
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanoutHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return f.derive(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (f fanoutHandler) WithGroup(name string) slog.Handler {
	return f.derive(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

func (f fanoutHandler) derive(fn func(slog.Handler) slog.Handler) slog.Handler {
	hs := make([]slog.Handler, len(f.handlers))
	for i, h := range f.handlers {
		hs[i] = fn(h)
	}
	return fanoutHandler{level: f.level, handlers: hs}
}
