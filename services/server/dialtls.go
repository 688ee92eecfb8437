package server

import (
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keymint/keymint/services/tlsfiles"
)

// DialTLSConfig is how a command dials a keymint gRPC server: plaintext
// unless a CA, a client certificate or TLS asks for TLS. Commands embed
// it with a flag prefix (central- for the sidecar, grpc-endpoint- for the
// gateway).
type DialTLSConfig struct {
	TLS        bool   `name:"tls" env:"TLS" help:"Use TLS to the keymint gRPC server with the system roots."`
	CAFile     string `name:"ca-file" env:"CA_FILE" help:"Verify the keymint gRPC server against this CA (enables TLS)."`
	CertFile   string `name:"cert-file" env:"CERT_FILE" help:"Client certificate for mTLS to the keymint gRPC server."`
	KeyFile    string `name:"key-file" env:"KEY_FILE" help:"Client key for mTLS to the keymint gRPC server."`
	ServerName string `name:"server-name" env:"SERVER_NAME" help:"TLS server name of the keymint gRPC server (default: the host of its address)."`
}

func (c *DialTLSConfig) problems(prefix string) []string {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return []string{prefix + "cert-file and " + prefix + "key-file go together"}
	}
	return nil
}

// credentials are the transport credentials toward addr; certificate files
// are re-read when they change.
func (c *DialTLSConfig) credentials(addr string) (credentials.TransportCredentials, error) {
	if !c.TLS && c.CAFile == "" && c.CertFile == "" {
		return insecure.NewCredentials(), nil
	}
	name := c.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		name = host
	}
	cfg, err := tlsfiles.Client(tlsfiles.Files{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}, name)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// Problems are c's flag problems, named with the command's prefix.
func (c *DialTLSConfig) Problems(prefix string) []string { return c.problems(prefix) }

// Credentials are the transport credentials toward addr (for commands
// outside this package: the admin CLI).
func (c *DialTLSConfig) Credentials(addr string) (credentials.TransportCredentials, error) {
	return c.credentials(addr)
}
