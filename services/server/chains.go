package server

import (
	"log/slog"
	"maps"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/fault"
)

// The interceptor chains of keymint serve, in one place: which run for a
// call, and in what order (first outermost). ValidateToken, gRPC and REST
// alike, runs the same unary chain composed once (hotpath.go).

// hotMethods are logged at debug level when they succeed.
var hotMethods = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName: true,
	authv3.Authorization_Check_FullMethodName:           true,
}

// watchMethods are long-lived streams, exempt from the RPC deadline cap.
var watchMethods = map[string]bool{
	healthpb.Health_Watch_FullMethodName:                   true,
	keymintv1.TokenService_WatchRevocations_FullMethodName: true,
}

// publicMethods never read credentials.
var publicMethods = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName:    true,
	keymintv1.TokenService_WatchRevocations_FullMethodName: true,
	authv3.Authorization_Check_FullMethodName:              true,
	keymintv1.AccountService_Login_FullMethodName:          true, // credentials are in the request
	// The reset code is the credential; throttled like Login.
	keymintv1.AccountService_CompletePasswordReset_FullMethodName: true,
	// Anyone who found a token in public may report it; it is rate limited
	// per client address and tells nothing.
	keymintv1.TokenService_ReportLeakedTokens_FullMethodName: true,
	healthpb.Health_Check_FullMethodName:                     true,
	healthpb.Health_Watch_FullMethodName:                     true,
	healthpb.Health_List_FullMethodName:                      true,
}

// publicMethodsFor is publicMethods, less WatchRevocations when the stream
// needs a token with keymint:watch.
func publicMethodsFor(watchRequiresScope bool) map[string]bool {
	if !watchRequiresScope {
		return publicMethods
	}
	public := maps.Clone(publicMethods)
	delete(public, keymintv1.TokenService_WatchRevocations_FullMethodName)
	return public
}

// unaryInterceptors is the unary chain of network calls: request id (a
// transport's), metrics and access log (observe), panics, deadline cap (not
// for self-bounded methods), injected faults, authentication (not for public
// methods). A chain composed for one method (the hot ones) binds what each
// looks up by method name once.
func unaryInterceptors(m *rpcMetrics, log *slog.Logger, authn *accounts.Authenticator) []link {
	return unaryLinks(requestIDUnary, m, log, authn)
}

// inProcessInterceptors is the same chain for calls made in process (the
// gateway's REST validations): the request id is the one their context
// carries (requestIDInProcess) instead of a transport's.
func inProcessInterceptors(m *rpcMetrics, log *slog.Logger, authn *accounts.Authenticator) []link {
	return unaryLinks(requestIDInProcess, m, log, authn)
}

// unaryLinks is the unary chain behind the given request-id link.
func unaryLinks(requestID grpc.UnaryServerInterceptor, m *rpcMetrics, log *slog.Logger, authn *accounts.Authenticator) []link {
	authenticate := authn.UnaryServerInterceptor()
	return []link{
		{run: requestID},
		observe(m, log, hotMethods),
		{run: recoverUnary(log)},
		except(selfBounded, deadlineUnary(maxRPCDeadline)),
		{run: fault.UnaryServerInterceptor(log)},
		// Public methods pass the interceptor untouched; bound, they skip it.
		{run: authenticate, forMethod: func(method string) grpc.UnaryServerInterceptor {
			if authn.Public[method] {
				return nil
			}
			return authenticate
		}},
	}
}

// streamInterceptors is the stream chain, in the unary chain's order.
func streamInterceptors(m *rpcMetrics, log *slog.Logger, authn *accounts.Authenticator) []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{requestIDStream, m.stream(), recoverStream(log), deadlineStream(maxRPCDeadline, watchMethods),
		fault.StreamServerInterceptor(log), authn.StreamServerInterceptor()}
}
