package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Sampling first. A server span of a call that comes without a caller's
// trace is a root span, and with a ratio sampler most roots are dropped.
// The SDK decides that inside Tracer.Start, after building the span's
// config, walking the context three times and allocating a span (2,700
// instructions a call in keymint serve, callgrind; startRoot drops one
// in 1,450, most of it the span context's two allocations). So for a root, the
// server interceptors pick the trace id and ask the root sampler first; a
// dropped call only gets the trace context (a valid, unsampled span
// context, so the calls it makes are dropped too and its answers carry
// traceparent with the sampled flag off), and a sampled one goes to
// Tracer.Start with that trace id preset, for the SDK's sampler to take
// the same decision on it (it is a function of the trace id) and record
// the span.

// rootSampling is the sampler of the tracer provider Setup installed and
// the sampler it asks for root spans.
type rootSampling struct {
	root sdktrace.Sampler
}

// active is the sampling of the provider Setup installed; nil when
// tracing is off or shut down (the interceptors then just call the
// global tracer).
var active atomic.Pointer[rootSampling]

// samplerFromEnv is the sampler OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG name, read as the SDK reads them
// (parentbased_always_on when unset), and the sampler that decides a root
// span under it. Unlike the SDK, which logs a bad value and samples
// everything, it refuses one: keymint does not start with a sampler it
// cannot honour.
func samplerFromEnv() (sampler, root sdktrace.Sampler, err error) {
	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() (sdktrace.Sampler, error) {
		if arg == "" {
			return sdktrace.TraceIDRatioBased(1), nil
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		return sdktrace.TraceIDRatioBased(v), nil
	}
	switch name {
	case "always_on":
		root = sdktrace.AlwaysSample()
		return root, root, nil
	case "always_off":
		root = sdktrace.NeverSample()
		return root, root, nil
	case "traceidratio":
		root, err = ratio()
		return root, root, err
	case "", "parentbased_always_on":
		root = sdktrace.AlwaysSample()
	case "parentbased_always_off":
		root = sdktrace.NeverSample()
	case "parentbased_traceidratio":
		if root, err = ratio(); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
	}
	return sdktrace.ParentBased(root), root, nil
}

// startRoot starts the server span of a call without a caller's trace.
func (r *rootSampling) startRoot(ctx context.Context, tracer trace.Tracer, name string, opts []trace.SpanStartOption) (context.Context, trace.Span) {
	tid := newTraceID()
	// A root has no parent: the sampler gets none (the SDK's would find
	// none in ctx either, after a walk of it).
	res := r.root.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: tid, Name: name, Kind: trace.SpanKindServer})
	if res.Decision == sdktrace.Drop {
		return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: newSpanID(), TraceState: res.Tracestate,
		})), dropped
	}
	return tracer.Start(context.WithValue(ctx, presetTraceID{}, tid), name, opts...)
}

// dropped is what startRoot returns for the span of a dropped root: the
// callers only ask it IsRecording (false) and End it (nothing). The span
// in the context is the one with the trace's ids.
var dropped = trace.SpanFromContext(context.Background())

// presetTraceID keys the trace id startRoot chose for the root span it
// hands to Tracer.Start.
type presetTraceID struct{}

// idGenerator is the SDK's random ids, except that a root span started on
// a context with a preset trace id gets that one.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if tid, ok := ctx.Value(presetTraceID{}).(trace.TraceID); ok {
		return tid, newSpanID()
	}
	return newTraceID(), newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

// newTraceID and newSpanID are random non-zero ids from math/rand/v2's
// per-thread generator, as the SDK's own.
func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
