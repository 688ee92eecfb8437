package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/testlog"
)

// seedCreateBody is the body of the seed page's curl example, byte for byte:
// tab-indented, with a raw newline inside the description.
const seedCreateBody = "{\n\t\"displayData\": {\n\t\t\"name\": \"Data Sources Bot API Token\",\n\t\t\"description\": \"API Token used by the bot \nto create Data Sources\"\n\t}\n}"

// Credentials the fake server accepts.
const (
	testEmail    = "YOUR_EMAIL_HERE"
	testPassword = "YOUR_PASSWORD_HERE"
	testToken    = "km_existingtoken"
	testSecret   = "km_mintedsecretvalue0123456789"
)

// Error text a careless server handler might return; it must never reach a
// caller.
const leakyError = "pq: password authentication failed for user keymint at 10.0.0.7:5432"

// fakeTokens is a TokenServiceServer that checks credentials the way the real
// one is expected to (it only reads metadata) and records what it received.
type fakeTokens struct {
	keymintv1.UnimplementedTokenServiceServer

	mu    sync.Mutex
	calls []fakeCall
}

// fakeCall is one RPC the fake server received.
type fakeCall struct {
	method string
	md     metadata.MD
	req    any
}

func (f *fakeTokens) record(ctx context.Context, method string, req any) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{method: method, md: md.Copy(), req: req})
}

// lastCall returns the most recent call, failing t if there was none.
func (f *fakeTokens) lastCall(t *testing.T) fakeCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the gRPC server received no call")
	}
	return f.calls[len(f.calls)-1]
}

// callCount is how many RPCs the server has received.
func (f *fakeTokens) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// authenticate accepts Bearer testToken, a raw testToken, the test email
// and password, or the session testSession.
func authenticate(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if a := md.Get("authorization"); len(a) == 1 && (a[0] == "Bearer "+testToken || a[0] == testToken) {
		return nil
	}
	if s := md.Get(authn.HeaderSession); len(s) == 1 && s[0] == testSession {
		return nil
	}
	e, p := md.Get("x-api-email"), md.Get("x-api-password")
	if len(e) == 1 && len(p) == 1 && e[0] == testEmail && p[0] == testPassword {
		return nil
	}
	return status.Error(codes.Unauthenticated, "invalid credentials")
}

func fakeToken(id string, st keymintv1.TokenStatus) *keymintv1.Token {
	t := &keymintv1.Token{
		Id:             id,
		OrganizationId: "org-1",
		UserId:         "user-1",
		Name:           "Data Sources Bot API Token",
		Description:    "desc",
		Hint:           "km_mint",
		CreateTime:     timestamppb.New(time.Date(2018, 11, 1, 12, 9, 27, 971_400_000, time.UTC)),
		CreatedBy:      "user-1",
		CreatedByEmail: "docs@upsolver.com",
		Status:         st,
	}
	if st == keymintv1.TokenStatus_TOKEN_STATUS_REVOKED {
		t.RevokeTime = timestamppb.New(time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	return t
}

func (f *fakeTokens) CreateToken(ctx context.Context, req *keymintv1.CreateTokenRequest) (*keymintv1.CreateTokenResponse, error) {
	f.record(ctx, "CreateToken", req)
	if err := authenticate(ctx); err != nil {
		return nil, err
	}
	// Response metadata the gateway must not turn into response headers.
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-internal-node", "node-7"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-internal-timing", "3ms"))
	t := fakeToken("tok-1", keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE)
	t.Name, t.Description = req.GetName(), req.GetDescription()
	return &keymintv1.CreateTokenResponse{Token: t, Secret: testSecret}, nil
}

func (f *fakeTokens) ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	f.record(ctx, "ValidateToken", req)
	return &keymintv1.ValidateTokenResponse{Valid: false, Reason: keymintv1.ValidateTokenResponse_REVOKED}, nil
}

func (f *fakeTokens) ListTokens(ctx context.Context, req *keymintv1.ListTokensRequest) (*keymintv1.ListTokensResponse, error) {
	f.record(ctx, "ListTokens", req)
	if err := authenticate(ctx); err != nil {
		return nil, err
	}
	// Two pages, to make the Upsolver route follow next_page_token.
	if req.GetPageToken() == "" {
		return &keymintv1.ListTokensResponse{
			Tokens:        []*keymintv1.Token{fakeToken("tok-1", keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE)},
			NextPageToken: "page-2",
		}, nil
	}
	return &keymintv1.ListTokensResponse{
		Tokens: []*keymintv1.Token{
			fakeToken("tok-2", keymintv1.TokenStatus_TOKEN_STATUS_REVOKED),
			fakeToken("tok-3", keymintv1.TokenStatus_TOKEN_STATUS_EXPIRED),
		},
	}, nil
}

func (f *fakeTokens) GetToken(ctx context.Context, req *keymintv1.GetTokenRequest) (*keymintv1.Token, error) {
	f.record(ctx, "GetToken", req)
	if err := authenticate(ctx); err != nil {
		return nil, err
	}
	switch req.GetId() {
	case "boom":
		// A plain error: grpc-go sends it as Unknown with this text.
		return nil, errors.New(leakyError)
	case "broken":
		return nil, status.Error(codes.Internal, leakyError)
	case "missing":
		return nil, status.Error(codes.NotFound, "token not found")
	case "throttled", "storedown":
		return nil, retryStatus(req.GetId())
	}
	return fakeToken(req.GetId(), keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE), nil
}

func (f *fakeTokens) RevokeToken(ctx context.Context, req *keymintv1.RevokeTokenRequest) (*keymintv1.Token, error) {
	f.record(ctx, "RevokeToken", req)
	if err := authenticate(ctx); err != nil {
		return nil, err
	}
	return fakeToken(req.GetId(), keymintv1.TokenStatus_TOKEN_STATUS_REVOKED), nil
}

// testGateway is a gateway in front of a fake gRPC server, both on loopback.
type testGateway struct {
	url string
	// h is the handler itself, for a test that must see what it did by the
	// time ServeHTTP returns (the access log line comes after the answer).
	h    http.Handler
	fake *fakeTokens
	logs *syncBuffer
}

// newTestGateway starts a fake TokenService on 127.0.0.1:0, dials it, and
// serves New's handler with httptest. edit may adjust the Config.
func newTestGateway(t *testing.T, edit func(*Config)) *testGateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeTokens{}
	srv := grpc.NewServer()
	keymintv1.RegisterTokenServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	logs := &syncBuffer{}
	cfg := Config{
		Conn:   conn,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testGateway{url: serve(t, h), h: h, fake: fake, logs: logs}
}

// serve serves h on loopback for the rest of the test and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer = testlog.Buffer

// retryStatus is what keymint's server answers a throttled sign-in
// ("throttled") or a call while its store is down ("storedown"): a status
// with a RetryInfo detail.
func retryStatus(kind string) error {
	st := status.New(codes.ResourceExhausted, "too many sign-in attempts; retry later")
	delay := 20*time.Second + 100*time.Millisecond
	if kind == "storedown" {
		st = status.New(codes.Unavailable, "store unavailable, retry shortly")
		delay = time.Second
	}
	st, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		panic(err)
	}
	return st.Err()
}
