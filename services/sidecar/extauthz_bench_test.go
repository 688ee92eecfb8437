package sidecar

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// BenchmarkCheck is an ext_authz allow around a validator that answers at
// once: the adapter's own share of a Check (building the answer).
func BenchmarkCheck(b *testing.B) {
	s := NewAuthzServer(testConfig(b))
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
			Headers: map[string]string{"authorization": "Bearer good"}}}}}
	ctx := context.Background()
	b.ReportAllocs()
	var resp *authv3.CheckResponse
	for b.Loop() {
		resp, _ = s.Check(ctx, req)
	}
	if resp.GetOkResponse() == nil {
		b.Fatalf("not allowed: %v", resp)
	}
}
