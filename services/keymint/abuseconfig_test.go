package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// Bad abuse settings are reported together, one line each, before anything
// starts.
func TestAbuseFlagsValidated(t *testing.T) {
	t.Parallel()
	err := runServe(context.Background(), []string{
		"--data-dir", t.TempDir(),
		"--trusted-proxies", "10.0.0.0/8, proxy.example",
		"--trusted-grpc-peers", "gateway.example",
		"--signin-account-limit", "5",
		"--signin-ip-limit", "lots/1s",
		"--argon2-max-wait", "0s",
	}, io.Discard)
	if err == nil {
		t.Fatal("serve started with invalid abuse settings")
	}
	for _, want := range []string{"trusted-proxies", "trusted-grpc-peers", "signin-account-limit", "signin-ip-limit", "argon2-max-wait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}
