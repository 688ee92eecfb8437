package client

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// A zero ValidatorConfig gets the documented defaults, and a value set is
// kept. Mutations it fails on (gremlins survivors of 1 December): any of
// NewValidator's `<= 0` negated or turned into `< 0`, and `30 *
// time.Second`, `2 * time.Second`, `1500 * time.Millisecond`, `10 *
// time.Minute` with `/` for `*`; `cfg.pause == nil` negated.
func TestValidatorConfigDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v, err := NewValidator(context.Background(), ValidatorConfig{Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	want := ValidatorConfig{CacheSize: 100_000, TTL: 30 * time.Second, NegativeTTL: 2 * time.Second,
		Timeout: 2 * time.Second, HeartbeatTimeout: 1500 * time.Millisecond,
		RevokedSize: 100_000, RevokedTTL: 10 * time.Minute}
	checkConfig(t, "defaults", v.cfg, want)
	if v.cfg.pause == nil {
		t.Error("no default pause between resubscribes")
	}

	set := ValidatorConfig{Conn: conn, CacheSize: 7, TTL: 7 * time.Second, NegativeTTL: 7 * time.Millisecond,
		Timeout: 7 * time.Millisecond, HeartbeatTimeout: 7 * time.Hour, RevokedSize: 7, RevokedTTL: 7 * time.Second}
	v2, err := NewValidator(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	checkConfig(t, "set", v2.cfg, set)
}

func checkConfig(t *testing.T, what string, got, want ValidatorConfig) {
	t.Helper()
	type sizes struct {
		CacheSize, RevokedSize                                  int
		TTL, NegativeTTL, Timeout, HeartbeatTimeout, RevokedTTL time.Duration
	}
	g := sizes{got.CacheSize, got.RevokedSize, got.TTL, got.NegativeTTL, got.Timeout, got.HeartbeatTimeout, got.RevokedTTL}
	w := sizes{want.CacheSize, want.RevokedSize, want.TTL, want.NegativeTTL, want.Timeout, want.HeartbeatTimeout, want.RevokedTTL}
	if g != w {
		t.Errorf("%s: got %+v, want %+v", what, g, w)
	}
}

// NewValidator without Target or Conn is refused.
func TestValidatorNeedsTargetOrConn(t *testing.T) {
	t.Parallel()
	if _, err := NewValidator(context.Background(), ValidatorConfig{}); err == nil {
		t.Fatal("a validator with neither Target nor Conn was made")
	}
}

// Close closes the connection Dial opened, and leaves one given to
// NewClient open. Mutations it fails on: Close's `c.conn == nil` negated
// (a Dial'ed connection never closed; NewClient's Close dereferences nil),
// Dial's `len(opts) == 0` negated (no transport credentials: Dial fails).
func TestClientCloseOwnsOnlyItsDial(t *testing.T) {
	t.Parallel()
	c, err := Dial("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := c.conn.GetState(); s != connectivity.Shutdown {
		t.Errorf("Dial'ed connection after Close: %v, want SHUTDOWN", s)
	}
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := NewClient(conn).Close(); err != nil {
		t.Fatal(err)
	}
	if s := conn.GetState(); s == connectivity.Shutdown {
		t.Error("Close closed a connection the caller gave")
	}
}
