//go:build !race

// testing.AllocsPerRun is unreliable under the race detector, whose
// instrumentation allocates; make test runs with -race, so this file runs
// in plain `go test`.

package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// TestValidateRouteAllocations: a REST validation costs the gateway three
// allocations (the request id with its context and header value, the
// request message, the token string), none of them a copy of the request:
// the direct route serves it in the access log's context as is.
func TestValidateRouteAllocations(t *testing.T) {
	conn, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp := &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "tok_0123456789", UserId: "usr_0123456789",
		OrganizationId: "org_0123456789", Scopes: []string{"read", "write"}}
	h, err := New(context.Background(), Config{Conn: conn, Logger: slog.New(slog.DiscardHandler),
		Validate: func(context.Context, *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
			return resp, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	const body = `{"token":"km_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"}`
	bodyReader := strings.NewReader(body)
	r, _ := http.NewRequest(http.MethodPost, "http://keymint"+validatePath, bodyReader)
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "127.0.0.1:40000"
	w := &discardWriter{h: http.Header{}}
	n := testing.AllocsPerRun(1000, func() {
		bodyReader.Reset(body)
		r.Body = readCloser{bodyReader}
		r.ContentLength = int64(len(body))
		clear(w.h)
		h.ServeHTTP(w, r)
	})
	if w.status != 0 && w.status != http.StatusOK {
		t.Fatalf("status %d", w.status)
	}
	if n > 3 {
		t.Errorf("%v allocations a validation, want at most 3", n)
	}
}
