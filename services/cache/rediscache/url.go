package rediscache

import (
	"crypto/tls"
	"errors"
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
// keymint reads the mode and the host list (forms go-redis has no URL for)
// and hands the rest to go-redis's own parsers (redis.ParseURL,
// ParseClusterURL, ParseFailoverURL), rewritten into their forms. No other
// query option is taken: timeout bounds dials, reads and writes, because
// keymint's Redis calls sit on the validation path and must fail fast
// rather than wait, and the retry and pool settings below follow from that.
// No error quotes the URL, which may hold a password.
func ParseURL(raw string, timeout time.Duration) (*redis.UniversalOptions, error) {
	mode, base, err := parseKeymintURL(raw)
	if err != nil {
		return nil, err
	}
	var o *redis.UniversalOptions
	switch mode {
	case "":
		var opt *redis.Options
		if opt, err = redis.ParseURL(base.String()); err == nil {
			o = &redis.UniversalOptions{Addrs: []string{opt.Addr}, Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig}
		}
	case "cluster":
		var opt *redis.ClusterOptions
		if opt, err = redis.ParseClusterURL(base.String()); err == nil {
			o = &redis.UniversalOptions{IsClusterMode: true, Addrs: opt.Addrs, Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig}
		}
	case "sentinel":
		var opt *redis.FailoverOptions
		if opt, err = redis.ParseFailoverURL(base.String()); err == nil {
			o = &redis.UniversalOptions{MasterName: opt.MasterName, Addrs: opt.SentinelAddrs, Username: opt.Username, Password: opt.Password,
				SentinelUsername: opt.SentinelUsername, SentinelPassword: opt.SentinelPassword, DB: opt.DB, TLSConfig: opt.TLSConfig}
		}
	}
	if err != nil {
		if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
			return nil, fmt.Errorf("redis url: not a URL")
		}
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if o.TLSConfig != nil {
		o.TLSConfig.MinVersion = tls.VersionTLS12
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

// parseKeymintURL reads keymint's URL forms: the mode (after "+" in the
// scheme) and a comma-separated host list, which go-redis's parsers do not
// know. It returns the URL in the form go-redis parses for that mode: the
// first host as the URL's host and the others as addr query options, and
// for Sentinel the master name, the master's credentials and the
// sentinels' password as the query options and user info ParseFailoverURL
// reads.
func parseKeymintURL(raw string) (string, *url.URL, error) {
	// net/url refuses a host list ("h1:1,h2:2"), so the hosts are cut out
	// first and the rest parsed around a placeholder host.
	schemePart, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", nil, fmt.Errorf("redis url: want scheme://host")
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
		return "", nil, fmt.Errorf("redis url: not a URL")
	}
	scheme, mode, _ := strings.Cut(u.Scheme, "+")
	if scheme != "redis" && scheme != "rediss" || mode != "" && mode != "sentinel" && mode != "cluster" {
		return "", nil, fmt.Errorf("redis url: scheme %q: want redis, rediss, redis+sentinel, redis+cluster, rediss+sentinel or rediss+cluster", u.Scheme)
	}
	addrs, err := parseHosts(hosts, mode)
	if err != nil {
		return "", nil, err
	}
	if mode == "" && len(addrs) > 1 {
		return "", nil, fmt.Errorf("redis url: several hosts need redis+sentinel:// or redis+cluster://")
	}
	query := u.Query()
	sentinelPassword := query.Get("sentinel_password")
	query.Del("sentinel_password")
	if len(query) > 0 || mode != "sentinel" && sentinelPassword != "" {
		return "", nil, fmt.Errorf("redis url: the only query option is sentinel_password, for Sentinel (keymint sets timeouts, retries and pool size)")
	}
	u.Scheme, u.Host = scheme, addrs[0]
	for _, a := range addrs[1:] {
		query.Add("addr", a)
	}
	path := strings.Trim(u.Path, "/")
	switch mode {
	case "sentinel":
		master, db, _ := strings.Cut(path, "/")
		if master == "" {
			return "", nil, fmt.Errorf("redis url: Sentinel needs the master name as the path: redis+sentinel://host/master")
		}
		query.Set("master_name", master)
		if u.User != nil {
			query.Set("username", u.User.Username())
			if p, ok := u.User.Password(); ok {
				query.Set("password", p)
			}
		}
		u.User, u.Path = nil, "/"+db
		if sentinelPassword != "" {
			u.User = url.UserPassword("", sentinelPassword)
		}
	case "cluster":
		if path != "" {
			return "", nil, fmt.Errorf("redis url: a Cluster has no database number")
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return "", nil, fmt.Errorf("redis url: database %q: want a number", db)
		}
	}
	u.RawQuery = query.Encode()
	return mode, u, nil
}

// parseHosts checks a comma-separated host list and gives each its port
// (26379 for sentinels, else 6379) when it has none.
func parseHosts(hosts, mode string) ([]string, error) {
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
	return addrs, nil
}

// NewClient returns the client ParseURL's options describe.
func NewClient(raw string, timeout time.Duration) (redis.UniversalClient, error) {
	o, err := ParseURL(raw, timeout)
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(o), nil
}
