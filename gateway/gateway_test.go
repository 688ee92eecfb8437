package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// doRequest sends one request and returns the response with its body read.
// A negative contentLength sends the body chunked.
func doRequest(t *testing.T, method, url, body string, header http.Header, contentLength int64) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
		if contentLength < 0 {
			rd = io.MultiReader(rd) // hide the length from net/http
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentLength < 0 && body != "" {
		req.ContentLength = -1
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// send is doRequest with a declared Content-Length.
func send(t *testing.T, method, url, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return doRequest(t, method, url, body, header, int64(len(body)))
}

// statusBody is grpc-gateway's error JSON.
type statusBody struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// wantStatusJSON checks an error response: HTTP status, JSON content type,
// the status shape with exactly code/message/details, and the gRPC code.
func wantStatusJSON(t *testing.T, resp *http.Response, body []byte, httpStatus, code int) statusBody {
	t.Helper()
	if resp.StatusCode != httpStatus {
		t.Fatalf("HTTP status = %d, want %d; body %s", resp.StatusCode, httpStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("error body is not a JSON object: %v: %s", err, body)
	}
	if got := sortedKeys(keys); !slices.Equal(got, []string{"code", "details", "message"}) {
		t.Errorf("error body keys = %v, want code, details, message: %s", got, body)
	}
	var sb statusBody
	if err := json.Unmarshal(body, &sb); err != nil {
		t.Fatal(err)
	}
	if sb.Code != code {
		t.Errorf("code = %d, want %d: %s", sb.Code, code, body)
	}
	if sb.Details == nil {
		t.Errorf("details missing or null, want []: %s", body)
	}
	return sb
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// allowedMetadata is every key the gRPC server may see from a gateway call:
// the three forwarded headers, the five the gateway derives from the
// connection and the request (its id), and what the gRPC transport itself adds.
var allowedMetadata = []string{
	"authorization", "x-api-email", "x-api-password",
	"x-forwarded-for", "x-forwarded-host", "x-keymint-client-ip", "x-keymint-user-agent", "x-request-id",
	":authority", "content-type", "user-agent", "grpc-accept-encoding",
}

// hostileHeaders are headers a caller might use to smuggle metadata in.
func hostileHeaders() http.Header {
	return http.Header{
		"X-Custom":                          {"custom"},
		"Grpc-Metadata-Foo":                 {"bar"},
		"Grpc-Metadata-Authorization":       {"Bearer smuggled"},
		"Grpc-Metadata-X-Api-Email":         {"smuggled@example.com"},
		"Grpcgateway-Cookie":                {"smuggled"},
		"Cookie":                            {"session=abc"},
		"X-Forwarded-For":                   {"203.0.113.66"},
		"X-Forwarded-Host":                  {"evil.example"},
		"Grpc-Timeout":                      {"1n"},
		"X-Keymint-Client-Ip":               {"203.0.113.66"},
		"Grpc-Metadata-X-Keymint-Client-Ip": {"203.0.113.66"},
	}
}

// checkMetadata fails t if md holds a key outside allowedMetadata, a value a
// hostile header set, or anything but the connection's address as
// x-forwarded-for.
func checkMetadata(t *testing.T, md metadata.MD) {
	t.Helper()
	for k, vs := range md {
		if !slices.Contains(allowedMetadata, k) {
			t.Errorf("gRPC server received metadata %q = %q", k, vs)
		}
		for _, v := range vs {
			if strings.Contains(v, "smuggled") || strings.Contains(v, "evil") || strings.Contains(v, "203.0.113.66") {
				t.Errorf("gRPC server received smuggled value %q = %q", k, v)
			}
		}
	}
	if got := md.Get("x-forwarded-for"); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("x-forwarded-for = %q, want the connection's address only", got)
	}
	// No proxy is trusted: the connection's address is the client.
	if got := md.Get("x-keymint-client-ip"); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("x-keymint-client-ip = %q, want the connection's address", got)
	}
}

func TestNewRequiresConn(t *testing.T) {
	t.Parallel()
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Fatal("New without Conn succeeded")
	}
}

func TestNativeCreateForwardsOnlyAllowedMetadata(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := hostileHeaders()
	h.Set("Authorization", "Bearer "+testToken)
	h.Set("X-Api-Email", testEmail)
	h.Set("Content-Type", "application/json")
	resp, body := send(t, http.MethodPost, g.url+"/v1/tokens", `{"name":"ci","description":"d"}`, h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	call := g.fake.lastCall(t)
	checkMetadata(t, call.md)
	if got := call.md.Get("authorization"); !slices.Equal(got, []string{"Bearer " + testToken}) {
		t.Errorf("authorization = %q, want exactly one value", got)
	}
	if got := call.md.Get("x-api-email"); !slices.Equal(got, []string{testEmail}) {
		t.Errorf("x-api-email = %q", got)
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, "Grpc-") {
			t.Errorf("response leaks gRPC metadata header %s: %q", k, resp.Header.Values(k))
		}
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out["secret"] != testSecret {
		t.Errorf("secret = %v, want %q", out["secret"], testSecret)
	}
}

func TestNativeUnknownFieldIs400(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := http.Header{"Authorization": {testToken}}
	resp, body := send(t, http.MethodPost, g.url+"/v1/tokens", `{"name":"ci","bogus":1}`, h)
	wantStatusJSON(t, resp, body, http.StatusBadRequest, 3)
	if n := g.fake.callCount(); n != 0 {
		t.Errorf("gRPC server got %d calls for a bad request", n)
	}
}

func TestNativeInvalidJSONIs400(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	resp, body := send(t, http.MethodPost, g.url+"/v1/tokens", `{"name":`, http.Header{"Authorization": {testToken}})
	wantStatusJSON(t, resp, body, http.StatusBadRequest, 3)
}

func TestNativeUnauthenticatedIs401(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := http.Header{"X-Api-Email": {testEmail}, "X-Api-Password": {"wrong"}}
	resp, body := send(t, http.MethodPost, g.url+"/v1/tokens", `{"name":"ci"}`, h)
	sb := wantStatusJSON(t, resp, body, http.StatusUnauthorized, 16)
	if sb.Message != "invalid credentials" {
		t.Errorf("message = %q, want the server's", sb.Message)
	}
	if got := resp.Header.Get("WWW-Authenticate"); got == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

func TestValidateEmitsFalse(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	resp, body := send(t, http.MethodPost, g.url+"/v1/tokens:validate", `{"token":"km_x"}`, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if v, ok := out["valid"]; !ok || string(v) != "false" {
		t.Errorf(`"valid" = %s (present %v), want an explicit false: %s`, v, ok, body)
	}
	if string(out["reason"]) != `"REVOKED"` {
		t.Errorf("reason = %s, want REVOKED", out["reason"])
	}
	if req := g.fake.lastCall(t).req; req.(interface{ GetToken() string }).GetToken() != "km_x" {
		t.Errorf("server got token %v", req)
	}
}

func TestNativeRoutes(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	auth := http.Header{"Authorization": {"Bearer " + testToken}}
	tests := []struct {
		method, path, body string
		wantRPC            string
	}{
		{http.MethodGet, "/v1/tokens?pageSize=5", "", "ListTokens"},
		{http.MethodGet, "/v1/tokens/tok-9", "", "GetToken"},
		{http.MethodPost, "/v1/tokens/tok-9:revoke", "{}", "RevokeToken"},
		{http.MethodDelete, "/v1/tokens/tok-9", "", "RevokeToken"},
	}
	for _, tt := range tests {
		resp, body := send(t, tt.method, g.url+tt.path, tt.body, auth)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s %s: status %d: %s", tt.method, tt.path, resp.StatusCode, body)
			continue
		}
		if got := g.fake.lastCall(t).method; got != tt.wantRPC {
			t.Errorf("%s %s called %s, want %s", tt.method, tt.path, got, tt.wantRPC)
		}
	}
}

func TestInternalErrorTextNeverReachesCaller(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	auth := http.Header{"Authorization": {testToken}}
	for _, path := range []string{"/v1/tokens/boom", "/v1/tokens/broken", "/api-tokens/boom", "/api-tokens/broken"} {
		resp, body := send(t, http.MethodGet, g.url+path, "", auth)
		sb := wantStatusJSON(t, resp, body, http.StatusInternalServerError, sb500Code(path))
		if sb.Message != msgInternal {
			t.Errorf("GET %s: message = %q, want %q", path, sb.Message, msgInternal)
		}
		if strings.Contains(string(body), "password") || strings.Contains(string(body), "10.0.0.7") {
			t.Errorf("GET %s leaks internal error text: %s", path, body)
		}
	}
}

// sb500Code is the gRPC code the fake server fails path with: a plain error
// arrives as Unknown (2), status.Error(codes.Internal) as 13.
func sb500Code(path string) int {
	if strings.HasSuffix(path, "boom") {
		return 2
	}
	return 13
}

func TestNotFoundFromServer(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	resp, body := send(t, http.MethodGet, g.url+"/v1/tokens/missing", "", http.Header{"Authorization": {testToken}})
	sb := wantStatusJSON(t, resp, body, http.StatusNotFound, 5)
	if sb.Message != "token not found" {
		t.Errorf("message = %q", sb.Message)
	}
}

func TestUnreachableServerIs503WithoutTransportText(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h, err := New(t.Context(), Config{Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, h)
	for _, path := range []string{"/v1/tokens", "/api-tokens"} {
		resp, body := send(t, http.MethodGet, url+path, "", nil)
		sb := wantStatusJSON(t, resp, body, http.StatusServiceUnavailable, 14)
		if sb.Message != msgUnavailable || strings.Contains(string(body), addr) {
			t.Errorf("GET %s: body %s leaks transport detail", path, body)
		}
	}
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	tests := []struct {
		method, path string
		httpStatus   int
		code         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, 5},
		{http.MethodGet, "/ui/nope.js", http.StatusNotFound, 5},
		{http.MethodGet, "/ui/a/b", http.StatusNotFound, 5},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, 12},
		{http.MethodDelete, "/ui/app.js", http.StatusMethodNotAllowed, 12},
		{http.MethodGet, "/api/user/tokens/a/b", http.StatusNotFound, 5},
		{http.MethodDelete, "/api/ping", http.StatusMethodNotAllowed, 12},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, 12},
		{http.MethodGet, "//v1/tokens", http.StatusNotFound, 5},
		{http.MethodGet, "/v1/./tokens", http.StatusNotFound, 5},
		{http.MethodPut, "/api/user/tokens", http.StatusMethodNotAllowed, 12},
		{http.MethodGet, "/v1/tokens/a/b", http.StatusNotFound, 5},
		{http.MethodGet, "/api-tokens/a/b", http.StatusNotFound, 5},
		{http.MethodPut, "/v1/tokens", http.StatusMethodNotAllowed, 12},
		{http.MethodPatch, "/v1/tokens/tok-1", http.StatusMethodNotAllowed, 12},
		{http.MethodPut, "/api-tokens", http.StatusMethodNotAllowed, 12},
		{http.MethodPut, "/api-tokens/", http.StatusMethodNotAllowed, 12},
		{http.MethodPost, "/api-tokens/tok-1", http.StatusMethodNotAllowed, 12},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, 12},
		{http.MethodDelete, "/readyz", http.StatusMethodNotAllowed, 12},
	}
	for _, tt := range tests {
		resp, body := send(t, tt.method, g.url+tt.path, "", nil)
		t.Logf("%s %s -> %d %s", tt.method, tt.path, resp.StatusCode, body)
		wantStatusJSON(t, resp, body, tt.httpStatus, tt.code)
		if tt.httpStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tt.method, tt.path)
		}
	}
	if n := g.fake.callCount(); n != 0 {
		t.Errorf("gRPC server got %d calls for routing errors", n)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 256
	g := newTestGateway(t, func(c *Config) { c.MaxBodyBytes = limit })
	big := `{"name":"` + strings.Repeat("a", 2*limit) + `"}`
	bigUpsolver := `{"displayData":{"name":"` + strings.Repeat("a", 2*limit) + `"}}`
	h := http.Header{"Authorization": {testToken}, "Content-Type": {"application/json"}}
	for _, chunked := range []bool{false, true} {
		for _, tc := range []struct{ path, body string }{
			{"/v1/tokens", big},
			{"/v1/tokens:validate", big},
			{"/api-tokens", bigUpsolver},
			{"/api-tokens/", bigUpsolver},
		} {
			cl := int64(len(tc.body))
			if chunked {
				cl = -1
			}
			resp, body := doRequest(t, http.MethodPost, g.url+tc.path, tc.body, h, cl)
			t.Logf("chunked=%v POST %s -> %d %s", chunked, tc.path, resp.StatusCode, body)
			wantStatusJSON(t, resp, body, http.StatusRequestEntityTooLarge, 8)
		}
	}
	if n := g.fake.callCount(); n != 0 {
		t.Errorf("gRPC server got %d calls for oversize bodies", n)
	}
	// At the limit is fine, chunked or not.
	ok := `{"name":"` + strings.Repeat("a", limit-len(`{"name":""}`)) + `"}`
	for _, cl := range []int64{int64(len(ok)), -1} {
		resp, body := doRequest(t, http.MethodPost, g.url+"/v1/tokens", ok, h, cl)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("body of exactly %d bytes (cl %d): status %d: %s", len(ok), cl, resp.StatusCode, body)
		}
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, func(c *Config) {
		c.Ready = func(context.Context) error { return errors.New("down") }
	})
	resp, body := send(t, http.MethodGet, g.url+"/healthz", "", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("/healthz = %d %s, want 200 {\"status\":\"ok\"}", resp.StatusCode, body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	const secretReason = "dial postgres://keymint:hunter2@db:5432 refused"
	tests := []struct {
		name       string
		ready      func(context.Context) error
		wantStatus int
		wantBody   string
	}{
		{"nil is ready", nil, http.StatusOK, `{"status":"ok"}`},
		{"ready", func(context.Context) error { return nil }, http.StatusOK, `{"status":"ok"}`},
		{"not ready", func(context.Context) error { return errors.New(secretReason) }, http.StatusServiceUnavailable, `{"status":"unavailable"}`},
		{"gets a deadline", func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return nil
		}, http.StatusOK, `{"status":"ok"}`},
		{"times out", func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}, http.StatusServiceUnavailable, `{"status":"unavailable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, func(c *Config) { c.Ready = tt.ready })
			resp, body := send(t, http.MethodGet, g.url+"/readyz", "", nil)
			if resp.StatusCode != tt.wantStatus || strings.TrimSpace(string(body)) != tt.wantBody {
				t.Errorf("/readyz = %d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}
