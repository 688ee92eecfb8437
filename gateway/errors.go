package gateway

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Messages that replace whatever text came with a status whose code means
// "something broke": such text may come from the gRPC client library (dial
// targets, transport state) or from a server handler that returned a plain
// error, and neither is for callers.
const (
	msgInternal    = "internal error"
	msgUnavailable = "service unavailable"
	msgDeadline    = "deadline exceeded"
	msgCanceled    = "request canceled"
)

// errorWriter renders every error the gateway answers with as grpc-gateway's
// status JSON, {"code": .., "message": .., "details": [..]}, with the HTTP
// status grpc-gateway maps the gRPC code to.
type errorWriter struct {
	log       *slog.Logger
	marshaler runtime.Marshaler
	// clearSession, when set, drops the session cookie from a request that a
	// cookie session failed to authenticate, so the browser stops sending a
	// dead secret.
	clearSession func(http.ResponseWriter, *http.Request)
	// allow, when set, lists the methods a path answers, for the Allow
	// header of a 405 the ServeMux raises.
	allow func(path string) []string
}

// handle is the runtime.ErrorHandlerFunc of the gateway's ServeMux.
func (e *errorWriter) handle(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	httpStatus, st := publicStatus(err)
	if httpStatus >= http.StatusInternalServerError {
		// The error text is safe to log: it is a status message or the gRPC
		// client's own text, never a header value or a body.
		e.log.LogAttrs(ctx, slog.LevelError, "request failed",
			slog.String("method", r.Method),
			slog.String("route", routeOf(ctx, r)),
			slog.String("code", status.Code(unwrapHTTPStatus(err)).String()),
			slog.String("error", err.Error()))
	}
	if st.Code() == codes.Unauthenticated && e.clearSession != nil && sessionFrom(r.Context()) != "" {
		e.clearSession(w, r)
	}
	e.writeStatus(w, httpStatus, st)
}

// routing is the runtime.RoutingErrorHandlerFunc of the gateway's ServeMux:
// an unknown path is a 404 and a known path with the wrong method a 405, both
// in the status JSON. (grpc-gateway's default answers 501 for the latter.)
func (e *errorWriter) routing(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if e.allow != nil && (httpStatus == http.StatusMethodNotAllowed || httpStatus == http.StatusNotFound) {
		// A path the document describes under other methods (POST
		// /metrics, say) is a 405 even where the ServeMux knows no route.
		if methods := e.allow(r.URL.Path); len(methods) > 0 && !slices.Contains(methods, r.Method) {
			httpStatus = http.StatusMethodNotAllowed
			setAllow(w, methods...)
		}
	}
	e.handle(ctx, mux, m, w, r, routingError(httpStatus))
}

// write answers r with err, as the ServeMux would.
func (e *errorWriter) write(w http.ResponseWriter, r *http.Request, err error) {
	e.handle(r.Context(), nil, nil, w, r, err)
}

// writeStatus writes st as the response body with the given HTTP status.
func (e *errorWriter) writeStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	body, err := e.marshaler.Marshal(st.Proto())
	if err != nil {
		// A detail whose type this binary does not know cannot be rendered;
		// the code and message still can.
		body, err = e.marshaler.Marshal(status.New(st.Code(), st.Message()).Proto())
	}
	if err != nil {
		httpStatus = http.StatusInternalServerError
		body = []byte(`{"code":13,"message":"internal error","details":[]}`)
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	if st.Code() == codes.Unauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="keymint"`)
	}
	if d := retryAfter(st); d > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// publicStatus turns err into the HTTP status and the status a caller may
// see. Codes that mean the caller did something wrong keep the server's
// message and details (the server keeps them safe); codes that mean something
// broke get a fixed message and no details.
func publicStatus(err error) (int, *status.Status) {
	httpStatus := 0
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		httpStatus = hse.HTTPStatus
		err = hse.Err
	}
	st, ok := status.FromError(err)
	switch {
	case ok:
	case httpStatus >= 400 && httpStatus < 500:
		// A routing error grpc-gateway raised with a plain error inside, such
		// as a malformed path escape.
		st = status.New(codeForHTTP(httpStatus), http.StatusText(httpStatus))
	default:
		st = status.New(codes.Internal, msgInternal)
		httpStatus = 0
	}
	switch st.Code() {
	case codes.OK:
		// A nil error or an OK status is no error to report.
		st = status.New(codes.Internal, msgInternal)
	case codes.Unknown, codes.Internal, codes.DataLoss:
		st = status.New(st.Code(), msgInternal)
	case codes.Unavailable:
		// keymint's server says why it is unavailable (the store, a sign-in
		// flood) in a safe message that comes with a retry hint; the gRPC
		// client's own Unavailable (a dial failure) has none and its text
		// is not for callers.
		if retryAfter(st) == 0 {
			st = status.New(st.Code(), msgUnavailable)
		}
	case codes.DeadlineExceeded:
		st = status.New(st.Code(), msgDeadline)
	case codes.Canceled:
		st = status.New(st.Code(), msgCanceled)
	}
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	return httpStatus, st
}

// routingError is the error for a request no route answers.
func routingError(httpStatus int) error {
	switch httpStatus {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
		return &runtime.HTTPStatusError{
			HTTPStatus: httpStatus,
			Err:        status.Error(codeForHTTP(httpStatus), http.StatusText(httpStatus)),
		}
	}
	return status.Error(codes.Internal, msgInternal)
}

// codeForHTTP is the gRPC code reported with a gateway-made 4xx.
func codeForHTTP(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusMethodNotAllowed:
		return codes.Unimplemented
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	}
	return codes.InvalidArgument
}

// unwrapHTTPStatus returns the status inside a runtime.HTTPStatusError, or err.
func unwrapHTTPStatus(err error) error {
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		return hse.Err
	}
	return err
}

// routeOf names the route r matched, never its raw path: a path can carry
// whatever a caller pasted into it.
func routeOf(ctx context.Context, r *http.Request) string {
	if p, ok := runtime.HTTPPathPattern(ctx); ok {
		return p
	}
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// retryAfter is the retry hint a status carries (a google.rpc.RetryInfo
// detail, as keymint's server attaches to ResourceExhausted and Unavailable),
// or 0. The gateway answers it as Retry-After, in whole seconds rounded up.
func retryAfter(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().IsValid() {
			return max(ri.GetRetryDelay().AsDuration(), 0)
		}
	}
	return 0
}
