// Package tlsfiles builds TLS configurations from PEM files and re-reads the
// files when they change, so rotated certificates (cert-manager, Vault
// agents) take effect on the next handshake without a restart.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of one side of a connection. CAFile verifies the
// peer; CertFile + KeyFile are this side's certificate (for a client: mTLS).
type Files struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// source re-reads its files when their modification times change, checked
// at most once per checkEvery.
type source struct {
	files Files

	mu        sync.Mutex
	checked   time.Time
	certStamp [2]time.Time
	caStamp   time.Time
	cert      *tls.Certificate
	pool      *x509.CertPool
}

const checkEvery = time.Second

func newSource(f Files) (*source, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("tls: set both the certificate and the key file, or neither")
	}
	s := &source{files: f}
	if err := s.reload(true); err != nil {
		return nil, err
	}
	return s, nil
}

func mtime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// reload re-reads changed files. A failed re-read keeps the previous
// material (a half-written file during rotation must not break TLS); the
// first read must succeed.
func (s *source) reload(first bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !first && time.Since(s.checked) < checkEvery {
		return nil
	}
	s.checked = time.Now()
	if s.files.CertFile != "" {
		ct, err1 := mtime(s.files.CertFile)
		kt, err2 := mtime(s.files.KeyFile)
		if err := errors.Join(err1, err2); err != nil {
			if first {
				return fmt.Errorf("tls: %w", err)
			}
		} else if first || ct != s.certStamp[0] || kt != s.certStamp[1] {
			cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
			if err != nil {
				if first {
					return fmt.Errorf("tls: load key pair: %w", err)
				}
			} else {
				s.cert, s.certStamp = &cert, [2]time.Time{ct, kt}
			}
		}
	}
	if s.files.CAFile != "" {
		t, err := mtime(s.files.CAFile)
		if err != nil {
			if first {
				return fmt.Errorf("tls: %w", err)
			}
		} else if first || t != s.caStamp {
			pem, err := os.ReadFile(s.files.CAFile)
			pool := x509.NewCertPool()
			if err == nil && !pool.AppendCertsFromPEM(pem) {
				err = fmt.Errorf("no certificate in %s", s.files.CAFile)
			}
			if err != nil {
				if first {
					return fmt.Errorf("tls: CA file: %w", err)
				}
			} else {
				s.pool, s.caStamp = pool, t
			}
		}
	}
	return nil
}

func (s *source) current() (*tls.Certificate, *x509.CertPool) {
	_ = s.reload(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, s.pool
}

// Client returns a client TLS config for serverName: the peer is verified
// against CAFile (the system roots when empty), and CertFile/KeyFile, when
// set, are presented for mTLS. Files are re-read when they change.
func Client(f Files, serverName string) (*tls.Config, error) {
	s, err := newSource(f)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if f.CertFile != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			return cert, nil
		}
	}
	if f.CAFile != "" {
		// The standard verifier cannot swap its roots, so verification runs
		// here against the current pool, with the same rules.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			_, pool := s.current()
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, DNSName: serverName, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return cfg, nil
}

// Server returns a server TLS config presenting CertFile/KeyFile; with
// CAFile set, clients must present a certificate signed by it (mTLS). Files
// are re-read when they change.
func Server(f Files) (*tls.Config, error) {
	if f.CertFile == "" {
		return nil, errors.New("tls: a server needs a certificate and key file")
	}
	s, err := newSource(f)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			c := base.Clone()
			c.Certificates = []tls.Certificate{*cert}
			if pool != nil {
				c.ClientCAs = pool
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
			return c, nil
		},
	}, nil
}
