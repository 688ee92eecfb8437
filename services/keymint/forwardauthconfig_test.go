package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// A bad --forward-auth-style stops serve and sidecar before anything
// starts.
func TestForwardAuthFlags(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{
		"serve":   runServe(context.Background(), []string{"--data-dir", t.TempDir(), "--forward-auth-style", "envoy"}, io.Discard),
		"sidecar": runSidecar(context.Background(), []string{"--central-addr", "127.0.0.1:1", "--forward-auth-style", "envoy"}, io.Discard),
	} {
		if err == nil || !strings.Contains(err.Error(), "forward-auth-style") {
			t.Errorf("%s --forward-auth-style envoy: %v", name, err)
		}
	}
}
