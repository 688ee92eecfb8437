package gateway

import (
	"net"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/keymint/keymint/services/authn"
)

// forwardedHeaders are the only caller-controlled HTTP headers that reach the
// gRPC server (the metadata keys headerMatcher can return). The server
// decides what they are worth; the gateway only carries them. The session
// key is not among them: the gateway sets it from the cookie alone.
var forwardedHeaders = [...]string{authn.HeaderAuthorization, authn.HeaderEmail, authn.HeaderPassword}

// maxForwardedHeaderBytes bounds the credential headers the gateway
// forwards, together: the gRPC server takes at most 16 KiB of metadata per
// call (grpc.MaxHeaderListSize), and a longer list would fail there as an
// internal error. Real credentials are well under 1 KiB.
const maxForwardedHeaderBytes = 8 << 10

// errForwardedTooLarge answers a request whose credential headers are over
// maxForwardedHeaderBytes: 431, as for any header too large.
var errForwardedTooLarge = &runtime.HTTPStatusError{
	HTTPStatus: http.StatusRequestHeaderFieldsTooLarge,
	Err:        status.Errorf(codes.InvalidArgument, "authorization, x-api-email and x-api-password are together larger than %d bytes", maxForwardedHeaderBytes),
}

// forwardedHeaderBytes is the size of the headers headerMatcher forwards.
func forwardedHeaderBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		if _, ok := headerMatcher(k); ok {
			for _, v := range vs {
				n += len(k) + len(v)
			}
		}
	}
	return n
}

// strippedHeaders are request headers the gateway drops before grpc-gateway
// sees them. grpc-gateway reads them itself, outside the header matcher:
// X-Forwarded-For and X-Forwarded-Host would let a caller choose the
// client address and host the server logs and limits by (the gateway sets
// both from the connection instead), Grpc-Timeout would let a caller pick the
// server's deadline, and TE: trailers would ask for gRPC trailers we never
// forward.
var strippedHeaders = [...]string{
	"X-Forwarded-For",
	"X-Forwarded-Host",
	"Grpc-Timeout",
	"Te",
	"X-Http-Method-Override",
}

// headerMatcher is the allow-list of incoming HTTP headers forwarded as gRPC
// metadata: authorization, x-api-email and x-api-password, matched without
// regard to ASCII case and returned lower-cased. Everything else, including
// Grpc-Metadata-* and the permanent headers grpc-gateway would copy as
// grpcgateway-*, stays at the gateway.
func headerMatcher(key string) (string, bool) {
	for _, name := range forwardedHeaders {
		if asciiEqualFold(key, name) {
			return name, true
		}
	}
	return "", false
}

// muxHeaderMatcher is headerMatcher as the runtime.ServeMux needs it.
// grpc-gateway forwards Authorization on its own, before consulting the
// matcher, so matching it again would send every value twice.
func muxHeaderMatcher(key string) (string, bool) {
	name, ok := headerMatcher(key)
	if !ok || name == authn.HeaderAuthorization {
		return "", false
	}
	return name, true
}

// dropHeaderMatcher forwards nothing. It keeps gRPC response metadata
// (headers and trailers) from turning into Grpc-Metadata-* / Grpc-Trailer-*
// response headers: none of it is meant for REST callers.
func dropHeaderMatcher(string) (string, bool) { return "", false }

// asciiEqualFold reports whether s equals lower (all lower-case ASCII) with
// ASCII case folded. strings.EqualFold would also fold Unicode look-alikes
// (U+017F long s matches "s"), which a header allow-list must not.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// stripHeaders returns a shallow copy of r without strippedHeaders. The copy
// keeps the handler from modifying the caller's request. A request carrying
// none of them (nearly all) is returned as is: cloning one costs more than a
// cached validation.
func stripHeaders(r *http.Request) *http.Request {
	if !hasStrippedHeader(r) {
		return r
	}
	r2 := r.Clone(r.Context())
	for _, h := range strippedHeaders {
		r2.Header.Del(h)
	}
	return r2
}

// isStrippedHeader reports whether the header key k is one of
// strippedHeaders.
func isStrippedHeader(k string) bool {
	for _, h := range strippedHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// hasStrippedHeader reports whether r carries one of strippedHeaders.
func hasStrippedHeader(r *http.Request) bool {
	for _, h := range strippedHeaders {
		if _, ok := r.Header[h]; ok {
			return true
		}
	}
	return false
}

// outgoingMetadata is the gRPC metadata the Upsolver and Semaphore routes
// send: the allow-listed headers, the cookie's session (taken by ServeHTTP
// only when the request carries no credentials of its own), plus the
// x-forwarded-host and x-forwarded-for values grpc-gateway derives from the
// connection for the native routes, and the client metadata the native
// routes get from clientAnnotator, so the server sees the same keys
// whichever route a call took. r must have passed through stripHeaders.
func outgoingMetadata(r *http.Request) metadata.MD {
	md := metadata.MD{}
	for key, vals := range r.Header {
		name, ok := headerMatcher(key)
		if !ok {
			continue
		}
		for _, v := range vals {
			if validMetadataValue(v) {
				md.Append(name, v)
			}
		}
	}
	if session := sessionFrom(r.Context()); session != "" {
		md.Set(authn.HeaderSession, session)
	}
	if r.Host != "" && validMetadataValue(r.Host) {
		md.Set("x-forwarded-host", r.Host)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && validMetadataValue(ip) {
		md.Set("x-forwarded-for", ip)
	}
	for k, v := range clientMetadata(r.Context()) {
		md[k] = v
	}
	return md
}

// validMetadataValue reports whether v is a legal gRPC ASCII metadata value
// (printable ASCII and space), the same rule grpc-gateway applies.
func validMetadataValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
