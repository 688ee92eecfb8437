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

// discardWriter is the least ResponseWriter: the benchmark measures the
// gateway's own work, not a recorder's.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkValidateRoute is the gateway's share of a REST validation (access
// log, security headers, limits, session check, JSON in and out) around an
// in-process ValidateFunc that answers at once.
func BenchmarkValidateRoute(b *testing.B) {
	for _, tc := range []struct {
		name string
		resp *keymintv1.ValidateTokenResponse
	}{
		{"cached", &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "tok_0123456789", UserId: "usr_0123456789",
			OrganizationId: "org_0123456789", Scopes: []string{"read", "write"}}},
		{"malformed", &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_MALFORMED}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			conn, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			h, err := New(context.Background(), Config{Conn: conn, Logger: slog.New(slog.DiscardHandler),
				Validate: func(context.Context, *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
					return tc.resp, nil
				}})
			if err != nil {
				b.Fatal(err)
			}
			const body = `{"token":"km_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"}`
			bodyReader := strings.NewReader(body)
			r, _ := http.NewRequest(http.MethodPost, "http://keymint"+validatePath, bodyReader)
			r.Header.Set("Content-Type", "application/json")
			r.RemoteAddr = "127.0.0.1:40000"
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bodyReader.Reset(body)
				r.Body = readCloser{bodyReader}
				r.ContentLength = int64(len(body))
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, r)
			}
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
