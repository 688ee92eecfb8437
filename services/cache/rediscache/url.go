package rediscache

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ParseURL turns KEYMINT_REDIS_URL into client options:
//
//	redis://[user:password@]host[:6379][/db]             one node
//	rediss://...                                          one node over TLS
//	redis+sentinel://[user:password@]s1[:26379],s2,.../master[/db]
//	                                                      Sentinel; the user and password are the
//	                                                      master's; ?sentinel_password=... for the sentinels'
//	redis+cluster://[user:password@]n1[:6379],n2,...      Cluster, seeded from any of its nodes
//	rediss+sentinel://..., rediss+cluster://...          the same over TLS
//
// timeout bounds dials, reads and writes: keymint's Redis calls sit on the
// validation path and must fail fast rather than wait.
func ParseURL(raw string, timeout time.Duration) (*redis.UniversalOptions, error) {
	// net/url refuses a host list ("h1:1,h2:2"), so the hosts are cut out
	// first and the rest parsed around a placeholder host.
	schemePart, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis url: want scheme://host")
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	hosts, userinfo := authority, ""
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse(schemePart + "://" + userinfo + "placeholder" + rest[len(authority):])
	if err != nil {
		// url.Parse's error quotes the URL, which may hold a password.
		return nil, fmt.Errorf("redis url: not a URL")
	}
	scheme, mode, _ := strings.Cut(u.Scheme, "+")
	if scheme != "redis" && scheme != "rediss" || mode != "" && mode != "sentinel" && mode != "cluster" {
		return nil, fmt.Errorf("redis url: scheme %q: want redis, rediss, redis+sentinel, redis+cluster, rediss+sentinel or rediss+cluster", u.Scheme)
	}
	defPort := "6379"
	if mode == "sentinel" {
		defPort = "26379"
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			continue
		}
		if strings.Count(h, "[") != strings.Count(h, "]") {
			return nil, fmt.Errorf("redis url: bad host")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defPort)
		}
		host, port, err := net.SplitHostPort(h)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("redis url: bad host or port")
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("redis url: no host")
	}
	if mode == "" && len(addrs) > 1 {
		return nil, fmt.Errorf("redis url: several hosts need redis+sentinel:// or redis+cluster://")
	}
	o := &redis.UniversalOptions{Addrs: addrs}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(path) == 1 && path[0] == "" {
		path = nil
	}
	switch mode {
	case "sentinel":
		if len(path) == 0 || path[0] == "" {
			return nil, fmt.Errorf("redis url: Sentinel needs the master name as the path: redis+sentinel://host/master")
		}
		o.MasterName, path = path[0], path[1:]
		o.SentinelPassword = u.Query().Get("sentinel_password")
	case "cluster":
		o.IsClusterMode = true
		if len(path) > 0 {
			return nil, fmt.Errorf("redis url: a Cluster has no database number")
		}
	}
	if len(path) > 1 {
		return nil, fmt.Errorf("redis url: unexpected path %q", u.Path)
	}
	if len(path) == 1 {
		db, err := strconv.Atoi(path[0])
		if err != nil || db < 0 {
			return nil, fmt.Errorf("redis url: database %q: want a number", path[0])
		}
		o.DB = db
	}
	if scheme == "rediss" {
		host, _, _ := net.SplitHostPort(addrs[0])
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	o.DialTimeout = max(4*timeout, 200*time.Millisecond)
	o.ReadTimeout = timeout
	o.WriteTimeout = timeout
	o.PoolTimeout = timeout
	o.ContextTimeoutEnabled = true
	// A retry would double a dead Redis's cost per call; the cache falls
	// back to the store instead, and backs off.
	o.MaxRetries = -1
	o.DialerRetries = 1
	// Concurrent misses of different tokens each hold a connection.
	o.PoolSize = 64
	return o, nil
}

// NewClient returns the client ParseURL's options describe.
func NewClient(raw string, timeout time.Duration) (redis.UniversalClient, error) {
	o, err := ParseURL(raw, timeout)
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(o), nil
}
