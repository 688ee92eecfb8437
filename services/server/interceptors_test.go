package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
)

func TestClampDeadline(t *testing.T) {
	t.Parallel()
	const max = time.Minute
	ctx, cancel := clampDeadline(context.Background(), max)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > max {
		t.Fatal("a call without deadline got none or a longer one")
	}
	long, cancelLong := context.WithTimeout(context.Background(), time.Hour)
	defer cancelLong()
	ctx, cancel = clampDeadline(long, max)
	defer cancel()
	if d, _ := ctx.Deadline(); time.Until(d) > max {
		t.Fatal("a client's hour-long grpc-timeout was not clamped")
	}
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	sd, _ := short.Deadline()
	ctx, cancel = clampDeadline(short, max)
	defer cancel()
	if d, _ := ctx.Deadline(); !d.Equal(sd) {
		t.Fatal("a shorter client deadline was changed")
	}
}

func TestRedactedMetadata(t *testing.T) {
	t.Parallel()
	md := metadata.Pairs(
		"authorization", "Bearer km_secret",
		"grpcgateway-authorization", "km_secret",
		"x-api-password", "hunter2hunter2",
		"grpcgateway-cookie", "keymint_session=abc",
		"x-keymint-session", "abc",
		"x-api-email", "typed-my-password-here",
		"x-api-key", "km_secret",
		"km_secret_as_a_key", "1",
		"user-agent", "curl/8",
		"grpcgateway-user-agent", "Mozilla/5.0",
	)
	out := redactedMetadata(md)
	want := map[string]string{"user-agent": "curl/8", "grpcgateway-user-agent": "Mozilla/5.0", "redacted": "8 other keys"}
	if len(out) != len(want) {
		t.Errorf("redactedMetadata = %v, want %v", out, want)
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %q, want %q", k, out[k], v)
		}
	}
	for k, v := range out {
		if strings.Contains(k+v, "secret") || strings.Contains(k+v, "password") || strings.Contains(v, "abc") {
			t.Errorf("logged %s = %q", k, v)
		}
	}
}
