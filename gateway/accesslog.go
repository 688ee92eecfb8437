package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/requestid"
)

// requestInfo is what the gateway learns about a request on the way in (who
// sent it) and on the way through (which route answered it). It travels in
// the request's context.
type requestInfo struct {
	// client is the caller's address under the trusted-proxy rule.
	client netip.Addr
	// userAgent is the caller's User-Agent, cleaned and truncated.
	userAgent string
	// route is the pattern of the grpc-gateway route that matched, if one
	// did (the other routes' patterns are on the request itself).
	route string
	// requestID is the request's id (requestid), sent on to the server.
	requestID string
}

type requestInfoKey struct{}

// infoFrom returns the request's info, or nil.
func infoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return ri
}

// clientMetadata is the metadata naming the caller for the gRPC server:
// x-keymint-client-ip and x-keymint-user-agent. Callers cannot send these
// keys themselves (headerMatcher never forwards them), and the server
// believes them only from a trusted peer such as this gateway.
func clientMetadata(ctx context.Context) metadata.MD {
	ri := infoFrom(ctx)
	if ri == nil {
		return nil
	}
	md := metadata.MD{clientip.MetadataUserAgent: {ri.userAgent}, requestid.Key: {ri.requestID}}
	if ri.client.IsValid() {
		md.Set(clientip.MetadataIP, ri.client.String())
	}
	return md
}

// clientAnnotator is the ServeMux metadata annotator that sends
// clientMetadata on the generated routes.
func clientAnnotator(_ context.Context, r *http.Request) metadata.MD {
	return clientMetadata(r.Context())
}

// recordRoute is the ServeMux middleware that notes the matched pattern
// for the access log.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if ri := infoFrom(r.Context()); ri != nil {
			if p, ok := runtime.HTTPPattern(r.Context()); ok {
				ri.route = r.Method + " " + p.String()
			}
		}
		next(w, r, params)
	}
}

// accessLog writes one line per request: method, route (the pattern that
// matched, never the raw path, which may hold a secret such as a token being
// revoked by its value), status, duration, bytes and the client address.
// Header values and bodies are never logged. It also gives every request
// its id (the caller's X-Request-Id when valid, else a new one: the
// response header, the log line, the gRPC call's x-request-id) and puts
// the requestInfo in the request's context for the handlers behind it.
type accessLog struct {
	next http.Handler
	// gw is next when it is the gateway, for the validation's direct route.
	gw *gateway
	// routes is the gateway's pattern router, asked which pattern a
	// request matched (the inner handlers route a copy of the request).
	routes  *http.ServeMux
	log     *slog.Logger
	clients *clientip.Resolver
}

// requestIDHeader is requestid.Key as net/http keys it.
var requestIDHeader = http.CanonicalHeaderKey(requestid.Key)

func (a *accessLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The validation hot path: it needs no client metadata (validation is
	// neither throttled nor audited), and a successful validation is logged
	// at debug level only, as over gRPC; failures are logged by the gRPC
	// access log of the in-process call.
	// By canonical key, straight in the maps: Header.Get/Set would
	// canonicalise the lowercase requestid.Key (an allocation) each time.
	var in string
	if v := r.Header[requestIDHeader]; len(v) > 0 {
		in = v[0]
	}
	ctx, idValue := requestid.WithAccepted(r.Context(), in)
	id := idValue[0]
	w.Header()[requestIDHeader] = idValue
	hot := r.Method == http.MethodPost && r.URL.Path == validatePath
	if hot && !a.log.Enabled(r.Context(), slog.LevelDebug) {
		// The direct route: a validation every gateway check lets through
		// untouched is served with ctx as is, without the copy of r that
		// carrying ctx would take (an allocation and a quarter of a KiB).
		if a.gw != nil && a.gw.fastValidation(r) {
			a.gw.serveValidation(w, r, ctx)
			return
		}
		a.next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	start := time.Now()
	ri := &requestInfo{
		client:    a.clients.FromHTTP(r.RemoteAddr, r.Header.Values("X-Forwarded-For")),
		userAgent: clientip.CleanUserAgent(r.UserAgent()),
		requestID: id,
	}
	inner := r.WithContext(context.WithValue(ctx, requestInfoKey{}, ri))
	sw := &statusWriter{ResponseWriter: w}
	a.next.ServeHTTP(sw, inner)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	level := slog.LevelInfo
	if (hot || quietPaths[r.URL.Path]) && sw.status < 300 {
		level = slog.LevelDebug
	}
	if !a.log.Enabled(r.Context(), level) {
		return
	}
	route := ri.route
	if route == "" {
		route = a.routePattern(inner)
	}
	a.log.LogAttrs(r.Context(), level, "http",
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", sw.status),
		slog.Duration("duration", time.Since(start)),
		slog.Int64("bytes", sw.bytes),
		slog.String("client_ip", clientip.String(ri.client)),
		slog.String("request_id", id),
	)
}

// quietPaths are polled by machines (probes, Prometheus): their successes
// are logged at debug level only.
var quietPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// routePattern is the pattern of the gateway's own routes that answers r, or
// "unmatched" (the catch-all, which grpc-gateway then failed to route). Never
// the path.
func (a *accessLog) routePattern(r *http.Request) string {
	if a.routes != nil {
		if _, p := a.routes.Handler(r); p != "" && p != "/" {
			return p
		}
	}
	return "unmatched"
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush passes a flush on, for streamed answers.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
