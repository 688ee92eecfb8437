package main

import (
	"context"
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
		"x-api-email", "a@example.com",
		"user-agent", "curl/8",
	)
	out := redactedMetadata(md)
	for k, v := range out {
		switch k {
		case "x-api-email", "user-agent":
			if v == "[redacted]" {
				t.Errorf("%s redacted needlessly", k)
			}
		default:
			if v != "[redacted]" {
				t.Errorf("%s = %q, want redacted", k, v)
			}
		}
	}
}
