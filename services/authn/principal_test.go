package authn

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"
)

func TestPrincipalContext(t *testing.T) {
	t.Parallel()
	if _, ok := PrincipalFrom(t.Context()); ok {
		t.Fatal("a bare context carries a principal")
	}
	want := Principal{UserID: "u1", OrgID: "o1", Email: "a@example.com", Method: ByToken, TokenID: "t1", Scopes: []string{"a:read"}}
	got, ok := PrincipalFrom(WithPrincipal(t.Context(), want))
	if !ok || got.UserID != want.UserID || got.Method != ByToken || got.TokenID != "t1" || !slices.Equal(got.Scopes, want.Scopes) {
		t.Fatalf("PrincipalFrom = %+v, %v; want %+v", got, ok, want)
	}
}

// stubStream is a grpc.ServerStream whose only method used here is Context.
type stubStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s stubStream) Context() context.Context { return s.ctx }

func TestStreamWithContext(t *testing.T) {
	t.Parallel()
	inner := stubStream{ctx: t.Context()}
	ctx := WithPrincipal(t.Context(), Principal{UserID: "u1", Method: BySession})
	ss := StreamWithContext(ctx, inner)
	if p, ok := PrincipalFrom(ss.Context()); !ok || p.UserID != "u1" {
		t.Fatalf("the wrapped stream's context carries %+v, %v", p, ok)
	}
	if _, ok := PrincipalFrom(inner.Context()); ok {
		t.Fatal("wrapping changed the inner stream's context")
	}
}
