package throttle

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A zero RedisConfig takes its documented defaults (RedisConfig's doc:
// Timeout 200 ms, Backoff 1 s; keys under keymint:throttle:), and set
// values are kept. Nothing is dialled: NewRedis only builds the limiter.
//
// Mutations (gremlins survivors): services/throttle/limiter.go NewRedis's
// `r.prefix == ""`, `r.timeout <= 0`, `r.backoff <= 0` negated or with
// the bound excluded: a set value replaced, or a zero one kept (a zero
// timeout fails every Redis call; a zero backoff never skips a failing
// Redis).
func TestRedisConfigDefaults(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { client.Close() })
	local, err := NewLocal(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	zero, err := NewRedis(RedisConfig{Client: client, Fallback: local})
	if err != nil {
		t.Fatal(err)
	}
	if zero.prefix != "keymint:throttle:" || zero.timeout != 200*time.Millisecond || zero.backoff != time.Second || zero.log == nil {
		t.Fatalf("zero RedisConfig: prefix %q, timeout %v, backoff %v; want keymint:throttle:, 200ms, 1s", zero.prefix, zero.timeout, zero.backoff)
	}
	set, err := NewRedis(RedisConfig{Client: client, Fallback: local, Prefix: "p:", Timeout: 7 * time.Second, Backoff: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if set.prefix != "p:" || set.timeout != 7*time.Second || set.backoff != 3*time.Minute {
		t.Fatalf("set RedisConfig changed: prefix %q, timeout %v, backoff %v", set.prefix, set.timeout, set.backoff)
	}
	if _, err := NewRedis(RedisConfig{Client: client}); err == nil {
		t.Fatal("NewRedis without a Fallback accepted")
	}
	if _, err := NewRedis(RedisConfig{Fallback: local}); err == nil {
		t.Fatal("NewRedis without a Client accepted")
	}
}
