package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/sidecar"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/throttle"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tokens"
	"github.com/keymint/keymint/services/tracing"
)

// Config is every setting of keymint, from flags with environment defaults.
type Config struct {
	HTTPAddr        string
	GRPCAddr        string
	GRPCEndpoint    string // gateway only: the keymint gRPC server to front
	DataDir         string
	DatabaseURL     string
	PepperFile      string
	Pepper          string // KEYMINT_PEPPER only: never a flag, flags show in ps
	TokenPrefix     string
	LogFormat       string
	LogLevel        string
	ShutdownTimeout time.Duration
	UsageFlush      time.Duration
	Argon2MemoryKiB uint
	Argon2Time      uint
	Argon2BudgetMiB uint
	// MemoryLimitMiB is the soft memory limit; 0 derives it (gc.go).
	MemoryLimitMiB uint
	// MaxConns and MaxConnsPerIP bound each listener's open connections.
	MaxConns      uint
	MaxConnsPerIP uint
	SessionIdle   time.Duration
	SessionMax    time.Duration
	SecureCookies bool
	RoutesFile    string
	Routes        []string
	StripAuth     bool
	// Forward-auth: which proxy's headers name the original request, and
	// whether route rules ignore case.
	ForwardAuthStyle string
	RoutesIgnoreCase bool
	// TLS on the gRPC port (serve) and toward the central server (sidecar).
	ServerTLS         tlsfiles.Files
	SidecarGRPCAddr   string
	SidecarHTTPAddr   string
	CentralAddr       string
	CentralServerName string
	CentralTLS        tlsfiles.Files
	CentralTLSOn      bool
	SidecarCacheTTL   time.Duration
	// CentralWatchToken is sent with WatchRevocations (KEYMINT_CENTRAL_WATCH_TOKEN
	// only: never a flag, flags show in ps).
	CentralWatchToken string
	Cache             cacheConfig      // validation cache and Redis (cacheconfig.go)
	Abuse             abuseConfig      // trusted proxies, sign-in throttle (abuseconfig.go)
	Revocations       revocationConfig // revocation log follower, WatchRevocations (revocationconfig.go)
	// Integrations: introspection, forward-auth body, GitHub secret scanning (integrationsconfig.go).
	Integrations integrationsConfig
	Webhooks     webhooksConfig // webhook key, SSRF, dispatcher bounds (webhooksconfig.go)
	// Tracing is OpenTelemetry tracing, off without an endpoint.
	Tracing tracing.Config
	// DatabaseRead is the optional read replica (store.go).
	DatabaseRead postgres.ReplicaConfig
	// storeHook, set by tests only, wraps the store (to count its calls).
	storeHook func(store.Store) store.Store
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "KEYMINT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// bindFlags registers the flags a command uses, each defaulting to its
// environment variable when set.
func bindFlags(fs *flag.FlagSet, c *Config, names ...string) {
	str := func(p *string, name, def, help string) {
		if v, ok := os.LookupEnv(envName(name)); ok {
			def = v
		}
		fs.StringVar(p, name, def, help+" ("+envName(name)+")")
	}
	dur := func(p *time.Duration, name string, def time.Duration, help string) {
		fs.Func(name, fmt.Sprintf("%s (default %s, %s)", help, def, envName(name)), func(s string) error {
			d, err := time.ParseDuration(s)
			*p = d
			return err
		})
		*p = def
		if v, ok := os.LookupEnv(envName(name)); ok {
			if d, err := time.ParseDuration(v); err == nil {
				*p = d
			} else {
				*p = -1 // reported by validate
			}
		}
	}
	num := func(p *uint, name string, def uint, help string) {
		if v, ok := os.LookupEnv(envName(name)); ok {
			var n uint
			if _, err := fmt.Sscan(v, &n); err == nil {
				def = n
			}
		}
		fs.UintVar(p, name, def, help+" ("+envName(name)+")")
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	all := []struct {
		name string
		bind func()
	}{
		{"http-addr", func() {
			str(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "REST, web page, health and metrics listen address")
		}},
		{"grpc-addr", func() { str(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "gRPC listen address") }},
		{"grpc-endpoint", func() {
			str(&c.GRPCEndpoint, "grpc-endpoint", "127.0.0.1:9090", "keymint gRPC server the gateway forwards to")
		}},
		{"data-dir", func() {
			str(&c.DataDir, "data-dir", "./data", "directory of the embedded SQLite store and its generated pepper")
		}},
		{"database-url", func() {
			str(&c.DatabaseURL, "database-url", "", "PostgreSQL URL; empty uses the embedded SQLite store")
		}},
		{"database-read-url", func() {
			str(&c.DatabaseRead.URL, "database-read-url", "", "PostgreSQL streaming replica for validation lookups and token lists; empty: the primary answers all")
			dur(&c.DatabaseRead.MaxLag, "database-read-max-lag", postgres.DefaultReplicaMaxLag, "a replica further behind the primary than this answers nothing")
		}},
		{"otlp-endpoint", func() {
			str(&c.Tracing.Endpoint, "otlp-endpoint", "", "OTLP/gRPC collector URL (http://host:4317) for traces; empty: tracing off; OTEL_* variables apply")
		}},
		{"pepper-file", func() {
			str(&c.PepperFile, "pepper-file", "", "file of token peppers, id:base64key per line, primary first")
		}},
		{"token-prefix", func() { str(&c.TokenPrefix, "token-prefix", "km", "prefix of minted tokens") }},
		{"log-format", func() { str(&c.LogFormat, "log-format", "json", "log format: json or text") }},
		{"log-level", func() { str(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error") }},
		{"shutdown-timeout", func() {
			dur(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests get to finish on shutdown")
		}},
		{"usage-flush", func() { dur(&c.UsageFlush, "usage-flush", 5*time.Second, "how often last-used times are written") }},
		{"argon2-memory-kib", func() {
			num(&c.Argon2MemoryKiB, "argon2-memory-kib", uint(accounts.DefaultHashParams.Memory), "argon2id memory per password hash, KiB")
		}},
		{"argon2-time", func() {
			num(&c.Argon2Time, "argon2-time", uint(accounts.DefaultHashParams.Time), "argon2id passes per password hash")
		}},
		{"routes-file", func() {
			str(&c.RoutesFile, "routes-file", "", "route rules for ext_authz and forward-auth: YAML routes: [{method, path, scopes}]")
		}},
		{"route", func() {
			if v, ok := os.LookupEnv(envName("routes")); ok {
				c.Routes = strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '\n' })
			}
			fs.Func("route", "a route rule \"[METHOD] /path=scope,scope\"; repeatable (KEYMINT_ROUTES, ';'-separated)", func(v string) error {
				c.Routes = append(c.Routes, v)
				return nil
			})
		}},
		{"forward-auth-style", func() {
			str(&c.ForwardAuthStyle, "forward-auth-style", "auto",
				"whose headers forward-auth believes for the original method and URI: nginx (X-Original-*), traefik or caddy (X-Forwarded-*), or auto (either; refused when they disagree)")
		}},
		{"routes-ignore-case", func() {
			def := os.Getenv(envName("routes-ignore-case")) == "true"
			fs.BoolVar(&c.RoutesIgnoreCase, "routes-ignore-case", def, "route rules match paths case-insensitively, for upstreams that do ("+envName("routes-ignore-case")+")")
		}},
		{"tls", func() {
			str(&c.ServerTLS.CertFile, "tls-cert-file", "", "gRPC port TLS certificate (PEM), re-read when it changes")
			str(&c.ServerTLS.KeyFile, "tls-key-file", "", "gRPC port TLS private key (PEM)")
			str(&c.ServerTLS.CAFile, "tls-client-ca-file", "", "require client certificates signed by this CA on the gRPC port (mTLS)")
		}},
		{"sidecar", func() {
			str(&c.SidecarGRPCAddr, "sidecar-grpc-addr", "127.0.0.1:9191", "sidecar ext_authz (gRPC) listen address")
			str(&c.SidecarHTTPAddr, "sidecar-http-addr", "127.0.0.1:9192", "sidecar forward-auth and health (HTTP) listen address")
			str(&c.CentralAddr, "central-addr", "", "the central keymint's gRPC address (required)")
			str(&c.CentralServerName, "central-server-name", "", "TLS server name of the central keymint (default: host of central-addr)")
			str(&c.CentralTLS.CAFile, "central-ca-file", "", "verify the central keymint against this CA (enables TLS)")
			str(&c.CentralTLS.CertFile, "central-cert-file", "", "client certificate for mTLS to the central keymint")
			str(&c.CentralTLS.KeyFile, "central-key-file", "", "client key for mTLS to the central keymint")
			def := os.Getenv(envName("central-tls")) == "true"
			fs.BoolVar(&c.CentralTLSOn, "central-tls", def, "use TLS to the central keymint with the system roots ("+envName("central-tls")+")")
			dur(&c.SidecarCacheTTL, "sidecar-cache-ttl", 30*time.Second, "how long the sidecar reuses an answer while the revocation stream is down")
		}},
		{"strip-authorization", func() {
			def := os.Getenv(envName("strip-authorization")) == "true"
			fs.BoolVar(&c.StripAuth, "strip-authorization", def, "ext_authz: remove the authorization header before the upstream sees it ("+envName("strip-authorization")+")")
		}},
		{"session-idle", func() {
			dur(&c.SessionIdle, "session-idle", accounts.DefaultSessionIdle, "web sessions unused this long end")
		}},
		{"session-max", func() {
			dur(&c.SessionMax, "session-max", accounts.DefaultSessionMax, "web sessions end this long after sign-in")
		}},
		{"secure-cookies", func() {
			def := false
			if v, ok := os.LookupEnv(envName("secure-cookies")); ok {
				def, _ = strconv.ParseBool(v)
			}
			fs.BoolVar(&c.SecureCookies, "secure-cookies", def,
				"session cookie Secure and named __Host-keymint_session even over plain HTTP, for TLS ended by a proxy ("+envName("secure-cookies")+")")
		}},
		{"redis-url", func() {
			str(&c.Cache.RedisURL, "redis-url", "", "Redis for the shared validation cache and revocation across replicas: redis://, rediss://, redis+sentinel://, redis+cluster://; empty: L1 only")
		}},
		{"redis-timeout", func() {
			dur(&c.Cache.RedisTimeout, "redis-timeout", 50*time.Millisecond, "bound on each Redis call on the validation path")
			dur(&c.Cache.RevocationTimeout, "redis-revocation-timeout", 0, "bound on each Redis call of a revocation (tombstone, publish), made after the API call returned; 0: 10× redis-timeout, at least 500ms")
		}},
		{"cache-l1-size", func() {
			num(&c.Cache.L1Size, "cache-l1-size", cache.DefaultL1Size, "in-process validation cache size in tokens; 0 turns it off")
		}},
		{"cache-l1-ttl", func() {
			dur(&c.Cache.L1TTL, "cache-l1-ttl", cache.DefaultL1TTL, "how long a replica answers from its in-process cache; bounds revocation staleness without Redis")
		}},
		{"cache-negative-ttl", func() {
			dur(&c.Cache.NegativeTTL, "cache-negative-ttl", cache.DefaultNegativeTTL, "how long an unknown token is remembered (in-process only)")
		}},
		{"cache-redis-ttl", func() {
			dur(&c.Cache.RedisTTL, "cache-redis-ttl", cache.DefaultRemoteTTL, "how long a token stays in Redis")
		}},
		{"trusted-proxies", func() {
			str(&c.Abuse.TrustedProxies, "trusted-proxies", "", "CIDR ranges of HTTP proxies whose X-Forwarded-For keymint believes, comma-separated; empty trusts none")
		}},
		{"trusted-grpc-peers", func() {
			str(&c.Abuse.TrustedGRPCPeers, "trusted-grpc-peers", "", "CIDR ranges of gRPC peers (a separate keymint gateway) whose x-keymint-client-ip keymint believes, comma-separated; empty trusts none")
		}},
		{"signin-limits", func() {
			str(&c.Abuse.AccountLimit, "signin-account-limit", throttle.DefaultAccountLimit.String(),
				"failed sign-ins per account: BURST/INTERVAL (that many at once, then one per interval, slowing further after 4×BURST), or off")
			str(&c.Abuse.IPLimit, "signin-ip-limit", throttle.DefaultIPLimit.String(),
				"failed sign-ins per client address (IPv6: per /64): BURST/INTERVAL, or off")
		}},
		{"argon2-max-wait", func() {
			dur(&c.Abuse.Argon2MaxWait, "argon2-max-wait", 2*time.Second, "how long a sign-in waits for a password-hashing slot before a 503")
		}},
		{"memory-limit-mib", func() {
			num(&c.MemoryLimitMiB, "memory-limit-mib", 0, "soft memory limit of the Go runtime, MiB; 0: the hashes that may run at once (at most argon2-budget-mib) + 64, at most 90% of the container's cgroup limit (GOMEMLIMIT wins)")
		}},
		{"max-connections", func() {
			num(&c.MaxConns, "max-connections", defaultMaxConns, "open connections each of the gRPC and HTTP ports keeps at most; beyond, new ones wait in the listen backlog")
			num(&c.MaxConnsPerIP, "max-connections-per-ip", defaultMaxConnsPerIP, "open connections per client address on each port (trusted proxies and gRPC peers exempt); beyond, new ones are closed")
		}},
		{"revocations", func() {
			dur(&c.Revocations.Poll, "revocation-poll", tokens.DefaultRevocationPoll, "how often a replica reads the revocation log for rows it missed (the bound without Redis)")
			dur(&c.Revocations.Retention, "revocation-log-retention", defaultRevocationRetention, "how long revocation log rows are kept (followers further behind resync)")
			dur(&c.Revocations.Heartbeat, "watch-heartbeat", tokens.DefaultWatchHeartbeat, "WatchRevocations heartbeat interval")
			num(&c.Revocations.MaxStreams, "watch-max-streams", tokens.DefaultMaxWatchStreams, "WatchRevocations streams per replica")
			num(&c.Revocations.MaxStreamsPerClient, "watch-max-streams-per-client", tokens.DefaultMaxWatchStreamsPerClient, "WatchRevocations streams per client address")
			num(&c.Revocations.PublishQueue, "revocation-publish-queue", tokens.DefaultPublishQueue, "revocations this replica made that may wait for Redis (tombstone, publish); beyond, they are not published and other replicas read them from the log")
			def := os.Getenv(envName("watch-require-scope")) == "true"
			fs.BoolVar(&c.Revocations.RequireScope, "watch-require-scope", def, "WatchRevocations needs a token with the keymint:watch scope ("+envName("watch-require-scope")+")")
		}},
		{"webhooks", func() { c.Webhooks.bind(fs, str, dur, num) }},
		{"argon2-budget-mib", func() {
			num(&c.Argon2BudgetMiB, "argon2-budget-mib", 256, "memory all concurrent password hashes may use together, MiB")
		}},
	}
	for _, f := range all {
		if want[f.name] {
			f.bind()
		}
	}
	c.Integrations.bind(fs, want, str, dur)
	c.Pepper = os.Getenv("KEYMINT_PEPPER")
	c.CentralWatchToken = os.Getenv("KEYMINT_CENTRAL_WATCH_TOKEN")
}

// storeFlags are the flags of every command that opens the store.
var storeFlags = []string{"data-dir", "database-url", "log-format", "log-level"}

// validate returns one line per problem, all at once.
func (c *Config) validate(fs *flag.FlagSet) error {
	var problems []string
	set := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { set[f.Name] = true })
	if set["token-prefix"] {
		if _, err := tokens.NewFormat(c.TokenPrefix); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if set["log-format"] && c.LogFormat != "json" && c.LogFormat != "text" {
		problems = append(problems, fmt.Sprintf("log-format %q: want json or text", c.LogFormat))
	}
	if set["log-level"] {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			problems = append(problems, fmt.Sprintf("log-level %q: want debug, info, warn or error", c.LogLevel))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"shutdown-timeout", c.ShutdownTimeout}, {"usage-flush", c.UsageFlush}, {"session-idle", c.SessionIdle}, {"session-max", c.SessionMax}} {
		if set[d.name] && d.v <= 0 {
			problems = append(problems, fmt.Sprintf("%s: want a positive duration such as 5s", d.name))
		}
	}
	if set["database-url"] && c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		problems = append(problems, "database-url: want a postgres:// URL (or leave it empty for the embedded store)")
	}
	if set["otlp-endpoint"] {
		if err := c.Tracing.Validate(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if set["database-read-url"] && c.DatabaseRead.URL != "" {
		switch {
		case c.DatabaseURL == "":
			problems = append(problems, "database-read-url: needs database-url (the primary)")
		case !strings.HasPrefix(c.DatabaseRead.URL, "postgres://") && !strings.HasPrefix(c.DatabaseRead.URL, "postgresql://"):
			problems = append(problems, "database-read-url: want a postgres:// URL")
		case c.DatabaseRead.MaxLag <= 0:
			problems = append(problems, "database-read-max-lag: want a positive duration such as 1s")
		}
	}
	if set["pepper-file"] && c.DatabaseURL != "" && c.Pepper == "" && c.PepperFile == "" {
		problems = append(problems, "with database-url, a pepper is required: set KEYMINT_PEPPER or --pepper-file (id:base64key lines; 'keymint' generates none for shared databases)")
	}
	if set["argon2-memory-kib"] {
		p := c.hashParams()
		if _, err := accounts.NewHasher(accounts.HasherConfig{Params: p}); err != nil {
			problems = append(problems, "argon2 parameters: "+err.Error())
		}
	}
	if set["memory-limit-mib"] && c.MemoryLimitMiB != 0 && c.MemoryLimitMiB <= c.Argon2BudgetMiB {
		problems = append(problems, "memory-limit-mib: want more than argon2-budget-mib (hashes alone may use that much), or 0 to derive it")
	}
	if set["max-connections"] && (c.MaxConns == 0 || c.MaxConnsPerIP == 0) {
		problems = append(problems, "max-connections and max-connections-per-ip: want at least 1")
	}
	if set["central-addr"] && c.CentralAddr == "" {
		problems = append(problems, "central-addr is required: the central keymint's gRPC address")
	}
	if set["sidecar-cache-ttl"] && c.SidecarCacheTTL <= 0 {
		problems = append(problems, "sidecar-cache-ttl: want a positive duration such as 30s")
	}
	if set["tls-cert-file"] && (c.ServerTLS.CertFile == "") != (c.ServerTLS.KeyFile == "") {
		problems = append(problems, "tls-cert-file and tls-key-file go together")
	}
	if set["tls-cert-file"] && c.ServerTLS.CAFile != "" && c.ServerTLS.CertFile == "" {
		problems = append(problems, "tls-client-ca-file needs tls-cert-file and tls-key-file")
	}
	if set["forward-auth-style"] {
		if _, err := sidecar.ParseStyle(c.ForwardAuthStyle); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if set["route"] {
		if _, err := c.routeRules(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	problems = append(problems, c.Cache.problems(set)...)
	problems = append(problems, c.Abuse.problems(set)...)
	problems = append(problems, c.Revocations.problems(set)...)
	problems = append(problems, c.Integrations.problems(set)...)
	problems = append(problems, c.Webhooks.problems(set)...)
	if len(problems) == 0 {
		return nil
	}
	return errors.New("invalid configuration:\n  " + strings.Join(problems, "\n  "))
}

func (c *Config) hashParams() accounts.HashParams {
	p := accounts.DefaultHashParams
	p.Memory = uint32(c.Argon2MemoryKiB)
	p.Time = uint32(c.Argon2Time)
	return p
}

func (c *Config) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// loadKeyring returns the pepper key ring: KEYMINT_PEPPER, else the pepper
// file, else (embedded store only) DATA_DIR/pepper, generated on first start.
func (c *Config) loadKeyring(log *slog.Logger) (*tokens.Keyring, error) {
	switch {
	case c.Pepper != "":
		return tokens.ParseKeyring(c.Pepper)
	case c.PepperFile != "":
		b, err := os.ReadFile(c.PepperFile)
		if err != nil {
			return nil, fmt.Errorf("read pepper file: %w", err)
		}
		return tokens.ParseKeyring(string(b))
	case c.DatabaseURL != "":
		return nil, errors.New("with database-url, a pepper is required: set KEYMINT_PEPPER or --pepper-file")
	}
	path := filepath.Join(c.DataDir, "pepper")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		text, gerr := tokens.GeneratePepperFile("1")
		if gerr != nil {
			return nil, gerr
		}
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create pepper file: %w", err)
		}
		if _, err := f.WriteString(text); err != nil {
			f.Close()
			return nil, fmt.Errorf("write pepper file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("write pepper file: %w", err)
		}
		log.Info("generated a pepper for the embedded store; back it up with the database", "path", path)
		b = []byte(text)
	} else if err != nil {
		return nil, fmt.Errorf("read pepper file: %w", err)
	}
	return tokens.ParseKeyring(string(b))
}

// routeRules builds the ext_authz / forward-auth route rules from the rules
// file and the --route flags (flags last, so they are listed after the file).
func (c *Config) routeRules() (*sidecar.Rules, error) {
	var rules []sidecar.Rule
	if c.RoutesFile != "" {
		rs, err := sidecar.LoadRules(c.RoutesFile)
		if err != nil {
			return nil, err
		}
		rules = append(rules, rs.List()...)
	}
	for _, v := range c.Routes {
		r, err := sidecar.ParseRule(v)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	rs, err := sidecar.NewRules(rules)
	if err != nil || !c.RoutesIgnoreCase {
		return rs, err
	}
	return rs.IgnoringCase()
}

// sidecarConfig is what ext_authz and forward-auth share, for serve and
// sidecar alike (validate has checked the style).
func (c *Config) sidecarConfig(v sidecar.Validator, rules *sidecar.Rules, clients *clientip.Resolver) sidecar.Config {
	style, _ := sidecar.ParseStyle(c.ForwardAuthStyle)
	return sidecar.Config{Validator: v, Rules: rules, StripAuthorization: c.StripAuth, Clients: clients, Style: style,
		IdentityBody: c.Integrations.IdentityBody}
}
