package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// Bad integration settings are reported before anything starts; a key
// file that cannot load stops serve.
func TestIntegrationFlagsValidated(t *testing.T) {
	t.Parallel()
	err := runServe(context.Background(), []string{
		"--data-dir", t.TempDir(),
		"--issuer", "ftp://keymint.example",
		"--github-keys", "http://api.github.com/meta/public_keys/secret_scanning",
		"--github-keys-refresh", "1s",
	}, io.Discard)
	if err == nil {
		t.Fatal("serve started with invalid integration settings")
	}
	for _, want := range []string{"issuer", "github-keys:", "github-keys-refresh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	err = runServe(context.Background(), []string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--argon2-memory-kib", "64", "--argon2-time", "1",
		"--github-keys", filepath.Join(t.TempDir(), "missing.json")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "github keys") {
		t.Fatalf("a missing key file: %v", err)
	}
}
