// Package gateway is keymint's REST facade: grpc-gateway routes for the
// TokenService (/v1/tokens...) and AccountService (/v1/user...), the
// Upsolver-compatible /api-tokens routes, the Semaphore-compatible /api/auth
// and /api/user/tokens routes with cookie sessions, the token web page, and
// the /healthz and /readyz probes. Every API call goes to keymint's gRPC
// server through a client connection, so REST callers pass through the same
// interceptors (auth, logging, limits, metrics) as gRPC callers.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/clientip"
)

// DefaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes int64 = 1 << 20

// readyTimeout bounds one Config.Ready call, so a hung dependency turns into
// a 503 rather than a hung probe.
const readyTimeout = 2 * time.Second

// Config configures the gateway handler.
type Config struct {
	// Conn is a client connection to keymint's gRPC port. Required.
	Conn *grpc.ClientConn
	// Ready reports whether keymint can serve, for /readyz. Nil means always
	// ready.
	Ready func(context.Context) error
	// MaxBodyBytes limits request bodies; larger ones get a 413. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives server-side failures (never header values, bodies,
	// tokens or passwords). Nil discards them.
	Logger *slog.Logger
	// Metrics, when set, serves GET /metrics (Prometheus exposition).
	Metrics http.Handler
	// Validate, when set, answers POST /v1/tokens:validate in process
	// instead of through Conn (see ValidateFunc).
	Validate ValidateFunc
	// SecureCookies marks the session cookie Secure and names it
	// __Host-keymint_session on every request, for a gateway behind a proxy
	// that ends TLS. Requests that arrive over TLS get that cookie anyway.
	SecureCookies bool
	// Clients decides a request's client address from the connection and
	// X-Forwarded-For under the trusted proxies (nil trusts none: the
	// connection's address is the client). The gateway sends it to the gRPC
	// server as x-keymint-client-ip, for throttling and the audit log.
	Clients *clientip.Resolver
}

// gateway is the handler New returns.
type gateway struct {
	routes  *http.ServeMux
	maxBody int64
	ready   func(context.Context) error
	errs    *errorWriter
	log     *slog.Logger
	// secureCookies is Config.SecureCookies.
	secureCookies bool
	// validate is the in-process ValidateToken route, or nil.
	validate *validateRoute
	// spec is the routes' shapes as the OpenAPI document describes them.
	spec *apiSpec
}

// New returns the HTTP handler for keymint's REST facade, serving the
// TokenService's REST routes, the Upsolver-compatible /api-tokens routes,
// /healthz and /readyz. It makes no calls: cfg.Conn is used per request.
func New(ctx context.Context, cfg Config) (http.Handler, error) {
	if cfg.Conn == nil {
		return nil, errors.New("gateway: Config.Conn is required")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("gateway: Config.MaxBodyBytes is %d, want >= 0", cfg.MaxBodyBytes)
	}
	g := &gateway{
		maxBody: cfg.MaxBodyBytes,
		ready:   cfg.Ready,
		log:     cfg.Logger,

		secureCookies: cfg.SecureCookies,
	}
	if g.maxBody == 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	spec, err := loadAPISpec()
	if err != nil {
		return nil, err
	}
	g.spec = spec
	marshaler := newMarshaler()
	g.errs = &errorWriter{log: g.log, marshaler: marshaler, clearSession: g.clearSessionCookie, allow: spec.allow}

	useQuietQueryParser()
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(muxHeaderMatcher),
		runtime.WithMetadata(sessionAnnotator),
		runtime.WithMetadata(clientAnnotator),
		runtime.WithMiddlewares(recordRoute),
		runtime.WithOutgoingHeaderMatcher(dropHeaderMatcher),
		runtime.WithOutgoingTrailerMatcher(dropHeaderMatcher),
		runtime.WithErrorHandler(g.errs.handle),
		runtime.WithRoutingErrorHandler(g.errs.routing),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	)
	client := keymintv1.NewTokenServiceClient(cfg.Conn)
	// The client, never RegisterTokenServiceHandlerServer: the in-process
	// registration would skip the server's interceptors.
	if err := keymintv1.RegisterTokenServiceHandlerClient(ctx, mux, client); err != nil {
		return nil, fmt.Errorf("gateway: register TokenService routes: %w", err)
	}
	accountsClient := keymintv1.NewAccountServiceClient(cfg.Conn)
	if err := keymintv1.RegisterAccountServiceHandlerClient(ctx, mux, accountsClient); err != nil {
		return nil, fmt.Errorf("gateway: register AccountService routes: %w", err)
	}
	if err := keymintv1.RegisterWebhookServiceHandlerClient(ctx, mux, keymintv1.NewWebhookServiceClient(cfg.Conn)); err != nil {
		return nil, fmt.Errorf("gateway: register WebhookService routes: %w", err)
	}

	up := &upsolverRoutes{client: client, errs: g.errs}
	g.routes = http.NewServeMux()
	g.routes.HandleFunc("/healthz", g.healthz)
	if cfg.Metrics != nil {
		g.routes.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Validate != nil {
		g.validate = &validateRoute{validate: cfg.Validate, marshaler: marshaler, errs: g.errs}
		g.routes.Handle("POST "+validatePath, g.validate)
	}
	g.routes.HandleFunc("/readyz", g.readyz)
	g.routes.HandleFunc("/api-tokens", up.collection)
	g.routes.HandleFunc("/api-tokens/{$}", up.collection)
	g.routes.HandleFunc("/api-tokens/{id}", up.item)
	sem := &semaphoreRoutes{g: g, tokens: client, accounts: accountsClient, errs: g.errs, now: time.Now}
	g.routes.HandleFunc(loginPath, sem.login)
	g.routes.HandleFunc(logoutPath, sem.logout)
	g.routes.HandleFunc(userPath, sem.user)
	g.routes.HandleFunc(pingPath, sem.ping)
	g.routes.HandleFunc(infoPath, sem.info)
	g.routes.HandleFunc("/api/user/tokens", sem.collection)
	g.routes.HandleFunc("/api/user/tokens/{id}", sem.item)
	page := newWebPage(g.errs)
	g.routes.HandleFunc("/{$}", page.index)
	g.routes.HandleFunc("/ui/{file}", page.asset)
	g.routes.HandleFunc("/docs", page.docs)
	g.routes.HandleFunc("/openapi.json", page.openAPI)
	g.routes.Handle("/", g.described(mux))
	return &accessLog{next: g, gw: g, routes: g.routes, log: g.log, clients: cfg.Clients}, nil
}

// securityHeaders are on every gateway answer. They are assigned straight
// into the header map, canonical keys and value slices built once: five
// Header.Set calls (canonicalising each key, a slice each) were a quarter
// of the gateway's own instructions on a REST validation. The slices are
// shared and never written to: Header.Set replaces a value, Header.Add
// appends to a full slice, which copies it.
var securityHeaders = [...]struct {
	key   string
	value []string
}{
	{"Cache-Control", []string{"no-store"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Content-Security-Policy", []string{apiCSP}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"no-referrer"}},
}

// ServeHTTP strips the headers the gateway never forwards, enforces the body
// limit, takes the session cookie (refusing cross-site state changes), then
// routes. No response carries CORS headers: other origins get nothing.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	r = stripHeaders(r)
	if forwardedHeaderBytes(r.Header) > maxForwardedHeaderBytes {
		g.errs.write(w, r, errForwardedTooLarge)
		return
	}
	if r.Method == http.MethodHead {
		// HEAD is GET without the body: net/http drops what the handler
		// writes, so every GET route answers HEAD alike.
		r = r.WithContext(r.Context())
		r.Method = http.MethodGet
	}
	if !canonicalPath(r.URL.Path) {
		// http.ServeMux would answer a text/html redirect to the cleaned
		// path; an API answers JSON, and a client should send the path it
		// means.
		g.errs.write(w, r, routingError(http.StatusNotFound))
		return
	}
	if err := g.spec.checkQuery(r); err != nil {
		g.errs.write(w, r, err)
		return
	}
	if !g.limitBody(w, r) {
		return
	}
	r, ok := g.withSession(w, r)
	if !ok {
		return
	}
	// The validation hot path skips the pattern routing (about 1 µs).
	if g.validate != nil && r.Method == http.MethodPost && r.URL.Path == validatePath {
		g.validate.ServeHTTP(w, r)
		return
	}
	g.routes.ServeHTTP(w, r)
}

func setSecurityHeaders(h http.Header) {
	for _, kv := range securityHeaders {
		h[kv.key] = kv.value
	}
}

// fastValidation reports whether r is a validation that every check of
// ServeHTTP lets through untouched: POST to the validate route (a clean
// path), no query, none of the headers stripHeaders drops, credential
// headers within maxForwardedHeaderBytes, a declared body length within
// the limit (limitBody wraps nothing), and no cookie (withSession takes no
// session and asks no same-origin proof). Anything else goes the generic
// way, whose checks then answer it.
func (g *gateway) fastValidation(r *http.Request) bool {
	if g.validate == nil || r.Method != http.MethodPost || r.URL.Path != validatePath || r.URL.RawQuery != "" ||
		r.ContentLength < 0 || r.ContentLength > g.maxBody {
		return false
	}
	// One pass over the (few) headers, where a lookup for the cookie and
	// each stripped header, then forwardedHeaderBytes' own pass, cost
	// about twice as much; the same exact-key tests.
	n := 0
	for k, vs := range r.Header {
		if k == "Cookie" || isStrippedHeader(k) {
			return false
		}
		if _, ok := headerMatcher(k); ok {
			for _, v := range vs {
				n += len(k) + len(v)
			}
		}
	}
	return n <= maxForwardedHeaderBytes
}

// serveValidation answers a request fastValidation let through, as
// ServeHTTP would, in ctx (r's context plus the access log's request id).
func (g *gateway) serveValidation(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	setSecurityHeaders(w.Header())
	g.validate.serve(w, r, ctx)
}

// described passes on to next (the generated routes) only the requests the
// OpenAPI document describes, so a binding the document leaves out on
// purpose (DELETE /v1/tokens/?token=, a secret in a URL, through the empty
// {id}) answers 404 rather than working undocumented.
func (g *gateway) described(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := g.spec.operation(r.Method, r.URL.Path); !ok {
			g.errs.routing(r.Context(), nil, nil, w, r, http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// canonicalPath reports whether p is a clean absolute path (no "//", "."
// or ".." segments; a trailing slash is fine).
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if plainPath(p) {
		return true
	}
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// plainPath reports whether the absolute path p has no empty segment but
// perhaps the last, and no "." or ".." segment: such a path is clean, so
// canonicalPath needs no path.Clean (an allocation) for the usual request.
func plainPath(p string) bool {
	for rest := p[1:]; ; {
		seg, after, more := strings.Cut(rest, "/")
		if !more {
			return seg != "." && seg != ".."
		}
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		rest = after
	}
}

// limitBody refuses a body over g.maxBody with a 413 before anything decodes
// it, and reports whether the request may go on. A declared Content-Length is
// checked up front; a body of unknown length (chunked) is read ahead through
// http.MaxBytesReader, which costs at most g.maxBody bytes of buffer, the
// same as decoding it would.
func (g *gateway) limitBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > g.maxBody {
		g.errs.write(w, r, g.tooLarge())
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength >= 0 {
		// A declared length was checked above, and net/http's body reader
		// stops at it: a MaxBytesReader would never trip (and cost an
		// allocation a request).
		return true
	}
	r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
	buf, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			g.errs.write(w, r, g.tooLarge())
		} else {
			g.errs.write(w, r, status.Error(codes.InvalidArgument, "could not read the request body"))
		}
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return true
}

// tooLarge is the error for a body over the limit.
func (g *gateway) tooLarge() error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err:        status.Errorf(codes.ResourceExhausted, "request body is larger than %d bytes", g.maxBody),
	}
}

// healthz answers 200 whenever the process can serve HTTP at all.
func (g *gateway) healthz(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, g.errs, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, probeBody{Status: "ok"})
}

// readyz answers 200 when Config.Ready succeeds within readyTimeout and 503
// otherwise. The reason goes to the log, never to the caller.
func (g *gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, g.errs, http.MethodGet, http.MethodHead) {
		return
	}
	if g.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := g.ready(ctx); err != nil {
			g.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.String("error", err.Error()))
			writeJSON(w, http.StatusServiceUnavailable, probeBody{Status: "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, probeBody{Status: "ok"})
}

// probeBody is the JSON body of /healthz and /readyz.
type probeBody struct {
	Status string `json:"status"`
}

// allowMethods reports whether r uses one of methods, answering 405 if not.
func allowMethods(w http.ResponseWriter, r *http.Request, errs *errorWriter, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	setAllow(w, methods...)
	errs.write(w, r, routingError(http.StatusMethodNotAllowed))
	return false
}

// setAllow sets the Allow header of a 405 to methods, with HEAD wherever GET
// is (HEAD works wherever GET does).
func setAllow(w http.ResponseWriter, methods ...string) {
	list := make([]string, 0, len(methods)+1)
	for _, m := range methods {
		if m == http.MethodHead {
			continue
		}
		list = append(list, m)
		if m == http.MethodGet {
			list = append(list, http.MethodHead)
		}
	}
	w.Header().Set("Allow", strings.Join(list, ", "))
}

// writeJSON writes v as a JSON response body with the given HTTP status.
func writeJSON(w http.ResponseWriter, httpStatus int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only the gateway's own plain structs come here; they always marshal.
		httpStatus = http.StatusInternalServerError
		body = []byte(`{"code":13,"message":"internal error","details":[]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(append(body, '\n'))
}
