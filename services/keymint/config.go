package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/tokens"
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
		{"argon2-budget-mib", func() {
			num(&c.Argon2BudgetMiB, "argon2-budget-mib", 256, "memory all concurrent password hashes may use together, MiB")
		}},
	}
	for _, f := range all {
		if want[f.name] {
			f.bind()
		}
	}
	c.Pepper = os.Getenv("KEYMINT_PEPPER")
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
	}{{"shutdown-timeout", c.ShutdownTimeout}, {"usage-flush", c.UsageFlush}} {
		if set[d.name] && d.v <= 0 {
			problems = append(problems, fmt.Sprintf("%s: want a positive duration such as 5s", d.name))
		}
	}
	if set["database-url"] && c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		problems = append(problems, "database-url: want a postgres:// URL (or leave it empty for the embedded store)")
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
