package sidecar

import (
	"context"
	"hash/maphash"
	"net/http"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/recent"
	"github.com/keymint/keymint/services/tracing"
)

// AuthzServer is Envoy's ext_authz v3 Authorization service.
type AuthzServer struct {
	authv3.UnimplementedAuthorizationServer
	cfg Config
	// answers holds recent allow answers by token id (recent.Size at
	// most, README "Shared reads": about 1.6 KB each, so ~1.6 MB): a
	// token's answer is built once while its identity stays the same.
	answers recent.Table[allowAnswer]
	seed    maphash.Seed
	ids     *identities
}

// NewAuthzServer returns the ext_authz server over cfg.
func NewAuthzServer(cfg Config) *AuthzServer {
	return &AuthzServer{cfg: cfg, seed: maphash.MakeSeed(), ids: newIdentities()}
}

// Check allows or denies one request Envoy holds. A deny is an answer, not an
// RPC error, so Envoy sends our status and body to the client.
func (s *AuthzServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	auth := header(httpReq, authn.HeaderAuthorization)
	// The downstream address as Envoy determined it (its own
	// use_remote_address / xff_num_trusted_hops rules applied).
	ip := req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	d := decide(ctx, &s.cfg, s.ids, auth, httpReq.GetMethod(), httpReq.GetPath(), ip)
	if d.allow {
		return s.allowed(ctx, &d), nil
	}
	code := codes.Unauthenticated
	switch d.status {
	case http.StatusForbidden:
		code = codes.PermissionDenied
	case http.StatusTooManyRequests:
		code = codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		code = codes.Unavailable
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	}
	headers := denyHeaders[d.status]
	if headers == nil {
		headers = denyHeaders[0]
	}
	if d.retryAfter != "" {
		headers = append(slices.Clip(headers), overwrite("retry-after", d.retryAfter))
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.status)},
			Headers: headers,
			Body:    string(d.body),
		}},
	}, nil
}

// allowAnswer is an allow's CheckResponse with every message it points to,
// allocated as one: built field by field, an allow took about twenty small
// allocations (measured in the ext_authz bench row).
type allowAnswer struct {
	// identity is the decision's headers the answer was built from.
	identity [len(decision{}.headers)][2]string
	resp     authv3.CheckResponse
	ok       authv3.CheckResponse_OkResponse
	http     authv3.OkHttpResponse
	opts     [len(decision{}.headers)]corev3.HeaderValueOption
	vals     [len(decision{}.headers)]corev3.HeaderValue
	set      [len(decision{}.headers)]*corev3.HeaderValueOption
	remove   [len(decision{}.headers) + 1]string
}

// okStatus is every allow's status; answers share it, read-only.
var okStatus = &status.Status{Code: int32(codes.OK)}

// allowed is d's answer: the identity headers set (or, empty, removed, so
// that a client-sent copy never gets through), the authorization header
// removed when configured, and the trace context for the service behind.
// Without a trace context to pass on, an answer depends on the identity
// headers alone, so the last one built for the token is answered again
// (shared read-only, as a gRPC server may) when they are the same.
func (s *AuthzServer) allowed(ctx context.Context, d *decision) *authv3.CheckResponse {
	if tracing.Propagating(ctx) {
		return &s.build(ctx, d, true).resp
	}
	h := maphash.String(s.seed, d.headers[0][1])
	if a := s.answers.Get(h, func(a *allowAnswer) bool { return a.identity == *d.headers }); a != nil {
		return &a.resp
	}
	a := s.build(ctx, d, false)
	s.answers.Put(h, a, func(old *allowAnswer) bool { return old.identity[0][1] == d.headers[0][1] })
	return &a.resp
}

// build makes d's answer, with the trace context when trace is set.
func (s *AuthzServer) build(ctx context.Context, d *decision, trace bool) *allowAnswer {
	a := &allowAnswer{identity: *d.headers}
	set, remove := a.set[:0], a.remove[:0]
	for i, h := range d.headers {
		if h[1] == "" {
			remove = append(remove, h[0])
			continue
		}
		a.vals[i] = corev3.HeaderValue{Key: h[0], Value: h[1]}
		a.opts[i] = corev3.HeaderValueOption{Header: &a.vals[i], AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
		set = append(set, &a.opts[i])
	}
	if s.cfg.StripAuthorization {
		remove = append(remove, authn.HeaderAuthorization)
	}
	if trace {
		tc := http.Header{}
		tracing.Inject(ctx, tc)
		for k := range tc {
			set = append(set, overwrite(strings.ToLower(k), tc.Get(k)))
		}
	}
	a.http.Headers = set
	if len(remove) > 0 {
		a.http.HeadersToRemove = remove
	}
	a.ok.OkResponse = &a.http
	a.resp.Status = okStatus
	a.resp.HttpResponse = &a.ok
	return a
}

// overwrite is a response header that replaces any copy.
func overwrite(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// denyHeaders are a deny's headers by HTTP status (0: any other status),
// built once; answers share them, read-only.
var denyHeaders = func() map[int][]*corev3.HeaderValueOption {
	contentType := overwrite("content-type", "application/json")
	m := map[int][]*corev3.HeaderValueOption{0: {contentType}}
	for _, st := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		m[st] = []*corev3.HeaderValueOption{contentType, overwrite("www-authenticate", wwwAuthenticate(st))}
	}
	return m
}()

// header reads a request header from either form Envoy sends: the headers
// map (lower-case keys), or header_map when raw header encoding is on.
func header(r *authv3.AttributeContext_HttpRequest, name string) string {
	if v, ok := r.GetHeaders()[name]; ok {
		return v
	}
	for _, h := range r.GetHeaderMap().GetHeaders() {
		if h.GetKey() == name {
			if v := h.GetValue(); v != "" {
				return v
			}
			return string(h.GetRawValue())
		}
	}
	return ""
}
