package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/throttle"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tokens"
	"github.com/keymint/keymint/services/tracing"
	"github.com/keymint/keymint/services/webhooks"
)

// Config is `keymint serve`: the gRPC API, the REST gateway in process, the
// web page, ext_authz and forward-auth. The struct tags bind each field to
// its flag and environment variable (the README's configuration table);
// parts other commands share are embedded types of their own.
type Config struct {
	HTTPAddr string `name:"http-addr" env:"KEYMINT_HTTP_ADDR" default:"127.0.0.1:8080" help:"REST, web page, health and metrics listen address."`
	GRPCAddr string `name:"grpc-addr" env:"KEYMINT_GRPC_ADDR" default:"127.0.0.1:9090" help:"gRPC listen address."`
	StoreConfig
	DatabaseReadURL    string        `name:"database-read-url" env:"KEYMINT_DATABASE_READ_URL" help:"PostgreSQL streaming replica for validation lookups and token lists; empty: the primary answers all."`
	DatabaseReadMaxLag time.Duration `name:"database-read-max-lag" env:"KEYMINT_DATABASE_READ_MAX_LAG" default:"${database_read_max_lag}" help:"A replica further behind the primary than this answers nothing."`
	TracingConfig
	PepperFile string `name:"pepper-file" env:"KEYMINT_PEPPER_FILE" help:"File of token peppers, id:base64key per line, primary first."`
	// Pepper is KEYMINT_PEPPER only: never a flag, flags show in ps.
	Pepper      string `kong:"-"`
	TokenPrefix string `name:"token-prefix" env:"KEYMINT_TOKEN_PREFIX" default:"km" help:"Prefix of minted tokens."`
	LogConfig
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"KEYMINT_SHUTDOWN_TIMEOUT" default:"15s" help:"How long in-flight requests get to finish on shutdown."`
	UsageFlush      time.Duration `name:"usage-flush" env:"KEYMINT_USAGE_FLUSH" default:"5s" help:"How often last-used times are written."`
	HashConfig
	Argon2BudgetMiB uint `name:"argon2-budget-mib" env:"KEYMINT_ARGON2_BUDGET_MIB" default:"256" help:"Memory all concurrent password hashes may use together, MiB."`
	// HashWorker is where password hashes run; empty is inline (library use).
	HashWorker string `name:"hash-worker" env:"KEYMINT_HASH_WORKER" default:"process" help:"Where password hashes run: process (a child process at the lowest CPU priority, so that validations keep the CPUs during a sign-in flood) or inline (in keymint's own goroutines)."`
	// MemoryLimitMiB is the soft memory limit; 0 derives it (memory.go).
	MemoryLimitMiB uint `name:"memory-limit-mib" env:"KEYMINT_MEMORY_LIMIT_MIB" default:"0" help:"Soft memory limit of the Go runtime, MiB; 0: the hashes that may run at once (at most argon2-budget-mib) + 64, at most 90% of the container's cgroup limit (GOMEMLIMIT wins)."`
	ConnLimitConfig
	SessionIdle   time.Duration `name:"session-idle" env:"KEYMINT_SESSION_IDLE" default:"${session_idle}" help:"Web sessions unused this long end."`
	SessionMax    time.Duration `name:"session-max" env:"KEYMINT_SESSION_MAX" default:"${session_max}" help:"Web sessions end this long after sign-in."`
	SecureCookies bool          `name:"secure-cookies" env:"KEYMINT_SECURE_COOKIES" help:"Session cookie Secure and named __Host-keymint_session even over plain HTTP, for TLS ended by a proxy."`
	RoutesConfig
	// TLS on the gRPC port.
	TLSCertFile     string `name:"tls-cert-file" env:"KEYMINT_TLS_CERT_FILE" help:"gRPC port TLS certificate (PEM), re-read when it changes."`
	TLSKeyFile      string `name:"tls-key-file" env:"KEYMINT_TLS_KEY_FILE" help:"gRPC port TLS private key (PEM)."`
	TLSClientCAFile string `name:"tls-client-ca-file" env:"KEYMINT_TLS_CLIENT_CA_FILE" help:"Require client certificates signed by this CA on the gRPC port (mTLS)."`

	Cache        CacheConfig        `embed:""` // validation cache and Redis (cache.go)
	Abuse        AbuseConfig        `embed:""` // trusted proxies, sign-in throttle (abuse.go)
	Revocations  RevocationConfig   `embed:""` // revocation log follower, WatchRevocations (revocations.go)
	Integrations IntegrationsConfig `embed:""` // introspection, forward-auth body, GitHub secret scanning (integrations.go)
	Webhooks     WebhooksConfig     `embed:""` // webhook key, SSRF, dispatcher bounds (webhooksconfig.go)
}

// The values of --hash-worker.
const (
	HashWorkerProcess = "process"
	HashWorkerInline  = "inline"
)

// Defaults are the ${name} values the flag defaults of this package's
// configs refer to: Go constants, so help and code cannot disagree.
func Defaults() map[string]string {
	d := func(v time.Duration) string { return v.String() }
	u := func(v uint) string { return strconv.FormatUint(uint64(v), 10) }
	return map[string]string{
		"database_read_max_lag":        d(postgres.DefaultReplicaMaxLag),
		"max_connections":              u(defaultMaxConns),
		"max_connections_per_ip":       u(defaultMaxConnsPerIP),
		"session_idle":                 d(accounts.DefaultSessionIdle),
		"session_max":                  d(accounts.DefaultSessionMax),
		"argon2_memory_kib":            u(uint(accounts.DefaultHashParams.Memory)),
		"argon2_time":                  u(uint(accounts.DefaultHashParams.Time)),
		"cache_l1_size":                u(cache.DefaultL1Size),
		"cache_l1_ttl":                 d(cache.DefaultL1TTL),
		"cache_negative_ttl":           d(cache.DefaultNegativeTTL),
		"cache_redis_ttl":              d(cache.DefaultRemoteTTL),
		"signin_account_limit":         throttle.DefaultAccountLimit.String(),
		"signin_ip_limit":              throttle.DefaultIPLimit.String(),
		"revocation_poll":              d(tokens.DefaultRevocationPoll),
		"revocation_log_retention":     d(defaultRevocationRetention),
		"watch_heartbeat":              d(tokens.DefaultWatchHeartbeat),
		"watch_max_streams":            u(tokens.DefaultMaxWatchStreams),
		"watch_max_streams_per_client": u(tokens.DefaultMaxWatchStreamsPerClient),
		"revocation_publish_queue":     u(tokens.DefaultPublishQueue),
		"webhook_timeout":              d(webhooks.DefaultTimeout),
		"webhook_concurrency":          u(webhooks.DefaultConcurrency),
		"webhook_retry_for":            d(webhooks.DefaultRetryFor),
		"webhook_disable_after":        d(webhooks.DefaultDisableAfter),
		"webhook_max_endpoints":        u(webhooks.DefaultMaxEndpoints),
		"webhook_poll":                 d(webhooks.DefaultPoll),
		"webhook_expiry_scan":          d(webhooks.DefaultSchedulerInterval),
	}
}

// Problems is a configuration's every problem, one line each.
type Problems []string

func (p Problems) Error() string { return "invalid configuration:\n  " + strings.Join(p, "\n  ") }

// orNil is p as an error, nil when there is none.
func (p Problems) orNil() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Validate returns every problem of c at once (Problems), or nil.
func (c *Config) Validate() error {
	var p Problems
	if _, err := tokens.NewFormat(c.TokenPrefix); err != nil {
		p = append(p, err.Error())
	}
	p = append(p, c.LogConfig.problems()...)
	p = append(p, positive(map[string]time.Duration{"shutdown-timeout": c.ShutdownTimeout, "usage-flush": c.UsageFlush,
		"session-idle": c.SessionIdle, "session-max": c.SessionMax})...)
	p = append(p, c.StoreConfig.problems()...)
	p = append(p, c.readReplicaProblems()...)
	p = append(p, c.TracingConfig.problems()...)
	if c.DatabaseURL != "" && c.Pepper == "" && c.PepperFile == "" {
		p = append(p, "with database-url, a pepper is required: set KEYMINT_PEPPER or --pepper-file (id:base64key lines; 'keymint' generates none for shared databases)")
	}
	p = append(p, c.HashConfig.problems()...)
	if c.HashWorker != "" && c.HashWorker != HashWorkerProcess && c.HashWorker != HashWorkerInline {
		p = append(p, "hash-worker: want process or inline")
	}
	if c.MemoryLimitMiB != 0 && c.MemoryLimitMiB <= c.Argon2BudgetMiB {
		p = append(p, "memory-limit-mib: want more than argon2-budget-mib (hashes alone may use that much), or 0 to derive it")
	}
	p = append(p, c.ConnLimitConfig.problems()...)
	p = append(p, c.tlsProblems()...)
	p = append(p, c.RoutesConfig.problems()...)
	p = append(p, c.Cache.problems()...)
	p = append(p, c.Abuse.problems()...)
	p = append(p, c.Revocations.problems()...)
	p = append(p, c.Integrations.problems()...)
	p = append(p, c.Webhooks.problems()...)
	return p.orNil()
}

func (c *Config) readReplicaProblems() []string {
	switch {
	case c.DatabaseReadURL == "":
		return nil
	case c.DatabaseURL == "":
		return []string{"database-read-url: needs database-url (the primary)"}
	case !isPostgresURL(c.DatabaseReadURL):
		return []string{"database-read-url: want a postgres:// URL"}
	case c.DatabaseReadMaxLag <= 0:
		return []string{"database-read-max-lag: want a positive duration such as 1s"}
	}
	return nil
}

func (c *Config) tlsProblems() []string {
	var out []string
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		out = append(out, "tls-cert-file and tls-key-file go together")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		out = append(out, "tls-client-ca-file needs tls-cert-file and tls-key-file")
	}
	return out
}

// serverTLS is the gRPC port's certificate files.
func (c *Config) serverTLS() tlsfiles.Files {
	return tlsfiles.Files{CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile, CAFile: c.TLSClientCAFile}
}

// readReplica is the store's read replica setting.
func (c *Config) readReplica() postgres.ReplicaConfig {
	return postgres.ReplicaConfig{URL: c.DatabaseReadURL, MaxLag: c.DatabaseReadMaxLag}
}

// positive returns a line for each duration that is not positive, in name
// order (so the lines come out the same every run).
func positive(ds map[string]time.Duration) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(ds)) {
		if ds[name] <= 0 {
			out = append(out, fmt.Sprintf("%s: want a positive duration such as 5s", name))
		}
	}
	return out
}

// LogConfig is how a command logs.
type LogConfig struct {
	LogFormat string `name:"log-format" env:"KEYMINT_LOG_FORMAT" default:"json" help:"Log format: json or text."`
	LogLevel  string `name:"log-level" env:"KEYMINT_LOG_LEVEL" default:"info" help:"Log level: debug, info, warn or error."`
}

func (c *LogConfig) problems() []string {
	var out []string
	if c.LogFormat != "json" && c.LogFormat != "text" {
		out = append(out, fmt.Sprintf("log-format %q: want json or text", c.LogFormat))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		out = append(out, fmt.Sprintf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return out
}

// Logger is the logger c describes, writing to w.
func (c *LogConfig) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// StoreConfig is where the store is: PostgreSQL, or the embedded SQLite
// file in the data directory.
type StoreConfig struct {
	DataDir     string `name:"data-dir" env:"KEYMINT_DATA_DIR" default:"./data" help:"Directory of the embedded SQLite store and its generated pepper."`
	DatabaseURL string `name:"database-url" env:"KEYMINT_DATABASE_URL" help:"PostgreSQL URL; empty uses the embedded SQLite store."`
}

func (c *StoreConfig) problems() []string {
	if c.DatabaseURL != "" && !isPostgresURL(c.DatabaseURL) {
		return []string{"database-url: want a postgres:// URL (or leave it empty for the embedded store)"}
	}
	return nil
}

// Problems is c's every problem, for commands that only open the store.
func (c *StoreConfig) Problems() []string { return c.problems() }

func isPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// HashConfig is the argon2id cost of a password hash.
type HashConfig struct {
	Argon2MemoryKiB uint `name:"argon2-memory-kib" env:"KEYMINT_ARGON2_MEMORY_KIB" default:"${argon2_memory_kib}" help:"argon2id memory per password hash, KiB."`
	Argon2Time      uint `name:"argon2-time" env:"KEYMINT_ARGON2_TIME" default:"${argon2_time}" help:"argon2id passes per password hash."`
}

func (c *HashConfig) problems() []string {
	if _, err := accounts.NewHasher(accounts.HasherConfig{Params: c.HashParams()}); err != nil {
		return []string{"argon2 parameters: " + err.Error()}
	}
	return nil
}

// Problems is c's every problem.
func (c *HashConfig) Problems() []string { return c.problems() }

// HashParams are the argon2id parameters c describes.
func (c *HashConfig) HashParams() accounts.HashParams {
	p := accounts.DefaultHashParams
	p.Memory = uint32(c.Argon2MemoryKiB)
	p.Time = uint32(c.Argon2Time)
	return p
}

// TracingConfig turns OpenTelemetry tracing on.
type TracingConfig struct {
	OTLPEndpoint string `name:"otlp-endpoint" env:"KEYMINT_OTLP_ENDPOINT" help:"OTLP/gRPC collector URL (http://host:4317) for traces; empty: tracing off; OTEL_* variables apply."`
}

func (c *TracingConfig) problems() []string {
	if err := c.tracing("").Validate(); err != nil {
		return []string{err.Error()}
	}
	return nil
}

func (c *TracingConfig) tracing(service string) tracing.Config {
	return tracing.Config{Endpoint: c.OTLPEndpoint, ServiceName: service}
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
		return generatePepper(c.DataDir, path, log)
	} else if err != nil {
		return nil, fmt.Errorf("read pepper file: %w", err)
	}
	return tokens.ParseKeyring(string(b))
}

// generatePepper writes a new pepper file at path (never over one).
func generatePepper(dir, path string, log *slog.Logger) (*tokens.Keyring, error) {
	text, err := tokens.GeneratePepperFile("1")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
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
	return tokens.ParseKeyring(text)
}

// ProblemsOf is the lines of parts as one error (Problems), nil when there
// are none: for commands made of several config parts.
func ProblemsOf(parts ...[]string) error {
	var p Problems
	for _, part := range parts {
		p = append(p, part...)
	}
	return p.orNil()
}

// Problems is c's every problem.
func (c *LogConfig) Problems() []string { return c.problems() }
