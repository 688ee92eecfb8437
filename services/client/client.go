// Package client is keymint's Go client library for resource services: a
// Client for the whole TokenService, and a caching Validator with net/http
// middleware and gRPC interceptors, kept fresh by keymint's revocation stream.
//
// Two lines put a service behind keymint:
//
//	v, _ := client.NewValidator(ctx, client.ValidatorConfig{Target: "keymint:9090"})
//	http.Handle("/reports", v.Middleware("reports:read")(reportsHandler))
package client

import (
	"context"
	"fmt"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Client is a connection to keymint exposing the whole TokenService.
type Client struct {
	keymintv1.TokenServiceClient
	conn *grpc.ClientConn
}

// Dial connects to keymint's gRPC address. Without options the connection
// is plaintext, for a keymint on loopback or inside a mesh; pass
// grpc.WithTransportCredentials for TLS or mTLS.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("keymint client: dial %s: %w", target, err)
	}
	return &Client{TokenServiceClient: keymintv1.NewTokenServiceClient(conn), conn: conn}, nil
}

// NewClient wraps an existing connection; Close then leaves it open.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{TokenServiceClient: keymintv1.NewTokenServiceClient(conn)}
}

// Close closes the connection Dial opened.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// WithPassword returns ctx carrying email + password credentials (needed to
// mint tokens).
func WithPassword(ctx context.Context, email, password string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, authn.HeaderEmail, email, authn.HeaderPassword, password)
}

// WithToken returns ctx carrying an API token as the credential.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, authn.HeaderAuthorization, authn.Bearer(token))
}
