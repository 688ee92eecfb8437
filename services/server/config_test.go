package server

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/sidecar"
)

// Valid sign-in limits build a throttle.
func TestSignInThrottle(t *testing.T) {
	t.Parallel()
	var c Config
	c.Abuse.AccountLimit, c.Abuse.IPLimit = "off", "3/1m"
	th, err := c.Abuse.signInThrottle(nil, 0, nil, slog.New(slog.DiscardHandler))
	if err != nil || th == nil {
		t.Fatalf("valid limits refused: %v", err)
	}
}

// --routes-ignore-case and --forward-auth-style reach the rules and the
// sidecar configuration; KEYMINT_ROUTES' ';'-separated rules split.
func TestRoutesConfig(t *testing.T) {
	t.Parallel()
	c := RoutesConfig{Routes: []string{"GET /Reports=reports:read"}, RoutesIgnoreCase: true, ForwardAuthStyle: "nginx"}
	rules, err := c.RouteRules()
	if err != nil {
		t.Fatal(err)
	}
	if got := rules.Scopes("GET", "/REPORTS/1"); !slices.Equal(got, []string{"reports:read"}) {
		t.Errorf("ignoring case: %v", got)
	}
	if cfg := c.SidecarConfig(nil, rules, nil, false); cfg.Style != sidecar.StyleNginx {
		t.Errorf("style %q", cfg.Style)
	}
	c.RoutesIgnoreCase = false
	rules, _ = c.RouteRules()
	if got := rules.Scopes("GET", "/REPORTS/1"); got != nil {
		t.Errorf("case-sensitive: %v", got)
	}
	c.Routes = []string{"GET /a=a:read;POST /b=b:write\nGET /c=c:read"}
	rules, err = c.RouteRules()
	if err != nil || len(rules.List()) != 3 {
		t.Fatalf("env-style list: %v %v", rules, err)
	}
}

// The sign-in throttle's Redis client is not the validation client: go-redis
// cuts a call at the earlier of the client's read timeout and the context's
// deadline, so on the validation client (50 ms) the throttle's 200 ms bound
// never applied and, on a loaded machine, counts fell back to each replica's
// own (seen as a sixth attempt let through in TestSignInThrottleShared...).
// Mutation: signInThrottle given s.cache.client, or signInClient built with
// c.RedisTimeout, fails here.
func TestSignInRedisClientHasItsOwnBound(t *testing.T) {
	t.Parallel()
	c := CacheConfig{RedisURL: "redis://127.0.0.1:1/0", RedisTimeout: 50 * time.Millisecond, L1Size: 16, L1TTL: time.Second, NegativeTTL: time.Second, RedisTTL: time.Minute}
	vc, err := newValidationCache(context.Background(), &c, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer vc.close()
	readTimeout := func(rc redis.UniversalClient) time.Duration { return rc.(*redis.Client).Options().ReadTimeout }
	if got := readTimeout(vc.client); got != c.RedisTimeout {
		t.Errorf("validation client read timeout %v, want --redis-timeout %v", got, c.RedisTimeout)
	}
	if vc.signInClient == vc.client || vc.signInClient == vc.revClient {
		t.Fatal("the sign-in throttle shares a client with validation or revocations")
	}
	if got, want := readTimeout(vc.signInClient), c.signInRedisTimeout(); got < want {
		t.Errorf("sign-in client read timeout %v cuts the throttle's %v bound", got, want)
	}
	if want := 200 * time.Millisecond; c.signInRedisTimeout() != want {
		t.Errorf("sign-in bound %v at --redis-timeout 50ms, want %v (README)", c.signInRedisTimeout(), want)
	}
}
