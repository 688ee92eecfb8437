package main

import (
	"context"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/grpc/metadata"
)

// mintToken creates a user on a fresh server config and mints one token
// through the gRPC API, returning its secret.
func mintToken(t testing.TB, srv *testServer, email, password string, scopes ...string) string {
	t.Helper()
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	r, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t", Scopes: scopes})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return r.GetSecret()
}

// BenchmarkValidateTokenGRPC is a cached ValidateToken through the real gRPC
// server and client in one process (make bench measures them apart).
func BenchmarkValidateTokenGRPC(b *testing.B) {
	cfg := testConfig(b)
	createUser(b, cfg, "bench@example.com", "acme", "a long test password", false)
	srv := startServer(b, cfg)
	secret := mintToken(b, srv, "bench@example.com", "a long test password", "read")
	req := &keymintv1.ValidateTokenRequest{Token: secret}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := srv.client.ValidateToken(context.Background(), req)
			if err != nil || !r.GetValid() {
				b.Errorf("validate: %v %v", r, err)
				return
			}
		}
	})
}
