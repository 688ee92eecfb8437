package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/requestid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// One id per request: a REST call's id is in the X-Request-Id response
// header, the gateway's access-log line and the gRPC access-log line of the
// call it made; a caller's valid id is kept, an unsafe one replaced; a gRPC
// caller gets it as header metadata.
func TestRequestIDs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const email, pw = "reqid@example.com", "a long test password"
	createUser(t, cfg, email, "acme", pw, false)
	srv := startServer(t, cfg)
	creds := map[string]string{"x-api-email": email, "x-api-password": pw}

	listWith := func(id string) string {
		req := request(t, "GET", srv.http+"/v1/tokens", creds)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, body := doReq(t, req, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		return resp.Header.Get("X-Request-Id")
	}
	if got := listWith("caller-id-1"); got != "caller-id-1" {
		t.Errorf("a valid caller id answered as %q", got)
	}
	unsafe := `bad id" level=ERROR`
	replaced := listWith(unsafe)
	if replaced == unsafe || !requestid.Valid(replaced) {
		t.Errorf("an unsafe caller id answered as %q", replaced)
	}
	generated := listWith("")
	if !requestid.Valid(generated) || generated == replaced {
		t.Errorf("a generated id %q (the previous %q)", generated, replaced)
	}

	// A direct gRPC call: its id comes back as header metadata.
	var header metadata.MD
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw, "x-request-id", "grpc-caller-2"))
	if _, err := srv.client.ListTokens(ctx, &keymintv1.ListTokensRequest{}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "grpc-caller-2" {
		t.Errorf("gRPC header metadata x-request-id = %q", got)
	}

	srv.stop()
	lines := map[string]map[string]bool{} // id -> log messages
	sc := bufio.NewScanner(strings.NewReader(srv.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
			Method    string `json:"method"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.RequestID == "" {
			continue
		}
		if lines[l.RequestID] == nil {
			lines[l.RequestID] = map[string]bool{}
		}
		lines[l.RequestID][l.Msg+" "+l.Method] = true
	}
	for _, id := range []string{"caller-id-1", replaced, generated} {
		if !lines[id]["http GET"] || !lines[id]["rpc "+keymintv1.TokenService_ListTokens_FullMethodName] {
			t.Errorf("request %s: log lines %v, want the gateway's http line and the gRPC rpc line", id, lines[id])
		}
	}
	if !lines["grpc-caller-2"]["rpc "+keymintv1.TokenService_ListTokens_FullMethodName] {
		t.Errorf("the gRPC call's rpc line lacks its id: %v", lines["grpc-caller-2"])
	}
	if strings.Contains(srv.logs.String(), "level=ERROR") {
		t.Error("the unsafe id reached the log")
	}
}
