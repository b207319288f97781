package loyalty

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/godwit-dev/godwit/internal/errs"
)

// step runs fn under a child span named name and ends it with fn's error
// (endSpan); fn sets the span's attributes. It is the one way the service
// times a step of an operation.
func (s *Service) step(ctx context.Context, name string, fn func(ctx context.Context, span trace.Span) error) error {
	ctx, span := s.tracer.Start(ctx, name)
	err := fn(ctx, span)
	endSpan(span, err)
	return err
}

// endSpan ends span, recording err as a span error only when it is
// unexpected: business rejections (errs kinds other than Internal) are set as
// the loyalty.result attribute by the caller instead.
func endSpan(span trace.Span, err error) {
	if err != nil {
		if e, ok := errs.As(err); ok && e.Kind != errs.Internal {
			span.SetAttributes(attribute.String("loyalty.error_code", errs.CodeOf(err)))
		} else {
			span.RecordError(err)
			span.SetStatus(codes.Error, "unexpected failure")
		}
	}
	span.End()
}

// endWithResult ends an operation's span with its outcome as attribute key:
// the error's code, "replayed" for a replay, or done.
func endWithResult(span trace.Span, key, done string, replayed bool, err error) {
	result := done
	switch {
	case err != nil:
		result = errs.CodeOf(err)
	case replayed:
		result = "replayed"
	}
	span.SetAttributes(attribute.String(key, result))
	endSpan(span, err)
}
