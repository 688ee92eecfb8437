package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/throttle"
)

// abuseConfig is the abuse-resistance part of Config: which proxies may name
// the client, and how fast passwords may be guessed.
type abuseConfig struct {
	// TrustedProxies lists CIDR ranges (or addresses) of HTTP proxies whose
	// X-Forwarded-For entries are believed.
	TrustedProxies string
	// TrustedGRPCPeers lists the gRPC peers (a separate `keymint gateway`)
	// whose x-keymint-client-ip metadata is believed. Separate from
	// TrustedProxies: trusting a pod network's proxies must not let every
	// pod in it forge client addresses over gRPC.
	TrustedGRPCPeers string
	// AccountLimit and IPLimit are throttle.ParseLimit forms.
	AccountLimit string
	IPLimit      string
	// Argon2MaxWait bounds a sign-in's wait for a hashing slot.
	Argon2MaxWait time.Duration
}

// problems returns one line per invalid abuse setting.
func (c *abuseConfig) problems(set map[string]bool) []string {
	var out []string
	if set["trusted-proxies"] {
		if _, err := clientip.ParseTrusted(c.TrustedProxies); err != nil {
			out = append(out, "trusted-proxies: "+err.Error())
		}
	}
	if set["trusted-grpc-peers"] {
		if _, err := clientip.ParseTrusted(c.TrustedGRPCPeers); err != nil {
			out = append(out, "trusted-grpc-peers: "+err.Error())
		}
	}
	if set["signin-account-limit"] {
		if _, err := throttle.ParseLimit(c.AccountLimit); err != nil {
			out = append(out, "signin-account-limit: "+err.Error())
		}
	}
	if set["signin-ip-limit"] {
		if _, err := throttle.ParseLimit(c.IPLimit); err != nil {
			out = append(out, "signin-ip-limit: "+err.Error())
		}
	}
	if set["argon2-max-wait"] && (c.Argon2MaxWait <= 0 || c.Argon2MaxWait > time.Minute) {
		out = append(out, "argon2-max-wait: want a positive duration up to 1m, such as 2s")
	}
	return out
}

// clients returns the client-address resolver of the trusted proxies and
// gRPC peers.
func (c *abuseConfig) clients() (*clientip.Resolver, error) {
	trusted, err := clientip.ParseTrusted(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	peers, err := clientip.ParseTrusted(c.TrustedGRPCPeers)
	if err != nil {
		return nil, fmt.Errorf("trusted-grpc-peers: %w", err)
	}
	return clientip.New(trusted, peers...), nil
}

// trustedList renders the trusted ranges for the start-up log.
func trustedList(r string) []string {
	p, _ := clientip.ParseTrusted(r)
	out := make([]string, len(p))
	for i, x := range p {
		out[i] = x.String()
	}
	return out
}

// signInThrottle builds the sign-in throttle: in Redis when keymint has a
// Redis client (every replica counts together), in process otherwise.
func (c *abuseConfig) signInThrottle(client redis.UniversalClient, redisTimeout time.Duration, reg prometheus.Registerer, log *slog.Logger) (*throttle.SignIn, error) {
	account, err := parseLimitOr(c.AccountLimit, throttle.DefaultAccountLimit)
	if err != nil {
		return nil, fmt.Errorf("signin-account-limit: %w", err)
	}
	ip, err := parseLimitOr(c.IPLimit, throttle.DefaultIPLimit)
	if err != nil {
		return nil, fmt.Errorf("signin-ip-limit: %w", err)
	}
	local, err := throttle.NewLocal(0, nil)
	if err != nil {
		return nil, err
	}
	var lim throttle.Limiter = local
	if client != nil {
		// Sign-in is not the validation path: a few round trips more of
		// patience than the cache's own Redis calls.
		if lim, err = throttle.NewRedis(throttle.RedisConfig{
			Client:   client,
			Timeout:  max(4*redisTimeout, 200*time.Millisecond),
			Fallback: local,
			Logger:   log,
		}); err != nil {
			return nil, err
		}
	}
	log.Info("sign-in throttle", "account", account.String(), "ip", ip.String(), "redis", client != nil,
		"trusted_proxies", trustedList(c.TrustedProxies), "trusted_grpc_peers", trustedList(c.TrustedGRPCPeers))
	return throttle.NewSignIn(throttle.SignInConfig{Limiter: lim, Account: account, IP: ip, Registerer: reg})
}

// parseLimitOr parses s, or returns def when s is empty.
func parseLimitOr(s string, def throttle.Limit) (throttle.Limit, error) {
	if s == "" {
		return def, nil
	}
	return throttle.ParseLimit(s)
}
