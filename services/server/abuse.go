package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/throttle"
)

// ProxyConfig is which HTTP proxies may name the client.
type ProxyConfig struct {
	// TrustedProxies lists CIDR ranges (or addresses) of HTTP proxies whose
	// X-Forwarded-For entries are believed.
	TrustedProxies string `name:"trusted-proxies" env:"KEYMINT_TRUSTED_PROXIES" help:"CIDR ranges of HTTP proxies whose X-Forwarded-For keymint believes, comma-separated; empty trusts none."`
}

func (c *ProxyConfig) problems() []string {
	if _, err := clientip.ParseTrusted(c.TrustedProxies); err != nil {
		return []string{"trusted-proxies: " + err.Error()}
	}
	return nil
}

// AbuseConfig is the abuse-resistance part of Config: which proxies may name
// the client, and how fast passwords may be guessed.
type AbuseConfig struct {
	ProxyConfig
	// TrustedGRPCPeers lists the gRPC peers (a separate `keymint gateway`)
	// whose x-keymint-client-ip metadata is believed. Separate from
	// TrustedProxies: trusting a pod network's proxies must not let every
	// pod in it forge client addresses over gRPC.
	TrustedGRPCPeers string `name:"trusted-grpc-peers" env:"KEYMINT_TRUSTED_GRPC_PEERS" help:"CIDR ranges of gRPC peers (a separate keymint gateway) whose x-keymint-client-ip keymint believes, comma-separated; empty trusts none."`
	// AccountLimit and IPLimit are throttle.ParseLimit forms.
	AccountLimit string `name:"signin-account-limit" env:"KEYMINT_SIGNIN_ACCOUNT_LIMIT" default:"${signin_account_limit}" help:"Failed sign-ins per account: BURST/INTERVAL (that many at once, then one per interval, slowing further after 4×BURST), or off."`
	IPLimit      string `name:"signin-ip-limit" env:"KEYMINT_SIGNIN_IP_LIMIT" default:"${signin_ip_limit}" help:"Failed sign-ins per client address (IPv6: per /64): BURST/INTERVAL, or off."`
	// Argon2MaxWait bounds a sign-in's wait for a hashing slot.
	Argon2MaxWait time.Duration `name:"argon2-max-wait" env:"KEYMINT_ARGON2_MAX_WAIT" default:"2s" help:"How long a sign-in waits for a password-hashing slot before a 503."`
}

// problems returns one line per invalid abuse setting.
func (c *AbuseConfig) problems() []string {
	out := c.ProxyConfig.problems()
	if _, err := clientip.ParseTrusted(c.TrustedGRPCPeers); err != nil {
		out = append(out, "trusted-grpc-peers: "+err.Error())
	}
	if _, err := parseLimitOr(c.AccountLimit, throttle.DefaultAccountLimit); err != nil {
		out = append(out, "signin-account-limit: "+err.Error())
	}
	if _, err := parseLimitOr(c.IPLimit, throttle.DefaultIPLimit); err != nil {
		out = append(out, "signin-ip-limit: "+err.Error())
	}
	if c.Argon2MaxWait <= 0 || c.Argon2MaxWait > time.Minute {
		out = append(out, "argon2-max-wait: want a positive duration up to 1m, such as 2s")
	}
	return out
}

// clients returns the client-address resolver of the trusted proxies and
// gRPC peers.
func (c *AbuseConfig) clients() (*clientip.Resolver, error) {
	return clientsOf(c.TrustedProxies, c.TrustedGRPCPeers)
}

// clients returns the client-address resolver of the trusted proxies.
func (c *ProxyConfig) clients() (*clientip.Resolver, error) { return clientsOf(c.TrustedProxies, "") }

func clientsOf(proxies, grpcPeers string) (*clientip.Resolver, error) {
	trusted, err := clientip.ParseTrusted(proxies)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	peers, err := clientip.ParseTrusted(grpcPeers)
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
func (c *AbuseConfig) signInThrottle(client redis.UniversalClient, timeout time.Duration, reg prometheus.Registerer, log *slog.Logger) (*throttle.SignIn, error) {
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
		if lim, err = throttle.NewRedis(throttle.RedisConfig{
			Client:   client,
			Timeout:  timeout,
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
