package sidecar

import (
	"context"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/tracing"
)

// AuthzServer is Envoy's ext_authz v3 Authorization service.
type AuthzServer struct {
	authv3.UnimplementedAuthorizationServer
	cfg Config
}

// NewAuthzServer returns the ext_authz server over cfg.
func NewAuthzServer(cfg Config) *AuthzServer { return &AuthzServer{cfg: cfg} }

// Check allows or denies one request Envoy holds. A deny is an answer, not an
// RPC error, so Envoy sends our status and body to the client.
func (s *AuthzServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	auth := header(httpReq, authn.HeaderAuthorization)
	// The downstream address as Envoy determined it (its own
	// use_remote_address / xff_num_trusted_hops rules applied).
	ip := req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	d := decide(ctx, &s.cfg, auth, httpReq.GetMethod(), httpReq.GetPath(), ip)
	if d.allow {
		ok := &authv3.OkHttpResponse{}
		for _, h := range d.headers {
			if h[1] == "" {
				// An empty identity value (a token without scopes) still must
				// not let a client-sent copy through.
				ok.HeadersToRemove = append(ok.HeadersToRemove, h[0])
				continue
			}
			ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: h[0], Value: h[1]},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
		if s.cfg.StripAuthorization {
			ok.HeadersToRemove = append(ok.HeadersToRemove, authn.HeaderAuthorization)
		}
		// The trace continues into the service behind Envoy.
		tc := http.Header{}
		tracing.Inject(ctx, tc)
		for k := range tc {
			ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: tc.Get(k)},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
		return &authv3.CheckResponse{
			Status:       &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		}, nil
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
	headers := []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
	if c := wwwAuthenticate(d.status); c != "" {
		headers = append(headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "www-authenticate", Value: c},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	if d.retryAfter != "" {
		headers = append(headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "retry-after", Value: d.retryAfter},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
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
