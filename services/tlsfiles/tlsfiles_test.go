package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/keymint/keymint/services/tlsfiles/tlstest"
)

func TestMutualTLSAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test-ca")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	srvCert, srvKey := ca.Issue(t, dir, "keymint.test", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, dir, "sidecar", x509.ExtKeyUsageClientAuth)

	serverCfg, err := Server(Files{CAFile: caFile, CertFile: srvCert, KeyFile: srvKey})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	dial := func(f Files) (*x509.Certificate, error) {
		cfg, err := Client(f, "keymint.test")
		if err != nil {
			return nil, err
		}
		c, err := tls.Dial("tcp", l.Addr().String(), cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := c.Handshake(); err != nil {
			return nil, err
		}
		// Read to surface a server-side refusal of our certificate.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if err != nil && err.Error() != "EOF" {
			return nil, err
		}
		return c.ConnectionState().PeerCertificates[0], nil
	}
	first, err := dial(Files{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey})
	if err != nil {
		t.Fatalf("mTLS handshake: %v", err)
	}
	if _, err := dial(Files{CAFile: caFile}); err == nil {
		t.Fatal("server accepted a client without a certificate")
	}
	otherFile := tlstest.NewCA(t, "other-ca").WriteCert(t, dir, "other.crt")
	if _, err := dial(Files{CAFile: otherFile, CertFile: cliCert, KeyFile: cliKey}); err == nil {
		t.Fatal("client trusted a server its CA did not sign")
	}

	// Rotate the server certificate in place; the next handshake sees it.
	ca.Issue(t, dir, "keymint.test", x509.ExtKeyUsageServerAuth)
	future := time.Now().Add(time.Minute)
	os.Chtimes(srvCert, future, future)
	os.Chtimes(srvKey, future, future)
	time.Sleep(checkEvery + 100*time.Millisecond)
	second, err := dial(Files{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey})
	if err != nil {
		t.Fatalf("handshake after rotation: %v", err)
	}
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("rotated server certificate was not picked up")
	}
}
