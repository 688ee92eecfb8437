package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// Bad read-replica and tracing settings are reported before anything
// starts, without echoing a URL's password.
func TestScaleFlagsValidated(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"replica without primary": {[]string{"--database-read-url", "postgres://u:secretpw@replica/db"}, "database-read-url: needs database-url"},
		"replica not postgres": {[]string{"--database-url", "postgres://u:secretpw@primary/db", "--database-read-url", "mysql://u:secretpw@replica/db"},
			"database-read-url: want a postgres:// URL"},
		"replica lag": {[]string{"--database-url", "postgres://u:secretpw@primary/db", "--database-read-url", "postgres://u:secretpw@replica/db",
			"--database-read-max-lag", "0s"}, "database-read-max-lag"},
		"otlp not a url":  {[]string{"--otlp-endpoint", "collector:4317"}, "otlp-endpoint: want a URL"},
		"otlp bad scheme": {[]string{"--otlp-endpoint", "grpc://collector:4317"}, "otlp-endpoint: want a URL"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--data-dir", t.TempDir()}, tc.args...)
			err := runServe(context.Background(), args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve %v: %v, want an error about %q", tc.args, err, tc.want)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("the error echoes a password: %v", err)
			}
		})
	}
}
