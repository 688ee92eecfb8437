package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keymint/keymint/services/webhooks"
)

// webhooksConfig is the webhook part of Config: the key sealing signing
// secrets, what URLs may be reached, and the dispatcher's and expiry
// scheduler's bounds.
type webhooksConfig struct {
	// Key is KEYMINT_WEBHOOK_KEY (env only, like the pepper); KeyFile the
	// file holding it.
	Key          string
	KeyFile      string
	AllowPrivate bool
	Timeout      time.Duration
	Concurrency  uint
	RetryFor     time.Duration
	DisableAfter time.Duration
	MaxEndpoints uint
	// ExpiryWarnings is a comma-separated list of durations before expiry.
	ExpiryWarnings string
	Poll           time.Duration
	Lease          time.Duration
	ScanInterval   time.Duration
}

// bindWebhookFlags registers the webhook flags with bindFlags' helpers.
func (c *webhooksConfig) bind(fs *flag.FlagSet, str func(*string, string, string, string),
	dur func(*time.Duration, string, time.Duration, string), num func(*uint, string, uint, string)) {
	str(&c.KeyFile, "webhook-key-file", "", "file with the base64 AES-256 key sealing webhook signing secrets (embedded store: generated in the data dir)")
	def := false
	if v, ok := os.LookupEnv(envName("webhooks-allow-private")); ok {
		def, _ = strconv.ParseBool(v)
	}
	fs.BoolVar(&c.AllowPrivate, "webhooks-allow-private", def,
		"let webhook URLs be http and reach loopback, private and link-local addresses (tests, closed networks) ("+envName("webhooks-allow-private")+")")
	dur(&c.Timeout, "webhook-timeout", webhooks.DefaultTimeout, "bound on one webhook attempt: connect, TLS, response")
	num(&c.Concurrency, "webhook-concurrency", webhooks.DefaultConcurrency, "webhook attempts in flight at once per replica")
	dur(&c.RetryFor, "webhook-retry-for", webhooks.DefaultRetryFor, "how long a webhook delivery is retried (exponential backoff with jitter, up to 1h apart)")
	dur(&c.DisableAfter, "webhook-disable-after", webhooks.DefaultDisableAfter, "a webhook endpoint failing every attempt this long is disabled")
	num(&c.MaxEndpoints, "webhook-max-endpoints", webhooks.DefaultMaxEndpoints, "webhook endpoints per organization")
	str(&c.ExpiryWarnings, "webhook-expiry-warnings", "168h,24h", "token.expiring goes out this long before a token expires, comma-separated")
	dur(&c.Poll, "webhook-poll", webhooks.DefaultPoll, "how often the webhook outbox is read when it was empty")
	dur(&c.Lease, "webhook-lease", 0, "how long a replica holds a delivery it is attempting (0: 2×webhook-timeout+30s); after a crash the event goes out again this long later")
	dur(&c.ScanInterval, "webhook-expiry-scan", webhooks.DefaultSchedulerInterval, "how often tokens entering an expiry warning window are looked for")
	c.Key = os.Getenv("KEYMINT_WEBHOOK_KEY")
}

// problems returns one line per invalid webhook setting.
func (c *webhooksConfig) problems(set map[string]bool) []string {
	if !set["webhook-timeout"] {
		return nil
	}
	var out []string
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"webhook-timeout", c.Timeout}, {"webhook-retry-for", c.RetryFor}, {"webhook-disable-after", c.DisableAfter},
		{"webhook-poll", c.Poll}, {"webhook-expiry-scan", c.ScanInterval}} {
		if d.v <= 0 {
			out = append(out, fmt.Sprintf("%s: want a positive duration", d.name))
		}
	}
	if c.Timeout > 5*time.Minute {
		out = append(out, "webhook-timeout: at most 5m")
	}
	if c.Lease < 0 || (c.Lease > 0 && c.Lease <= c.Timeout) {
		out = append(out, "webhook-lease: must exceed webhook-timeout (or be 0 for the default)")
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		out = append(out, "webhook-concurrency: 1 to 256")
	}
	if c.MaxEndpoints < 1 || c.MaxEndpoints > 1000 {
		out = append(out, "webhook-max-endpoints: 1 to 1000")
	}
	if _, err := c.windows(); err != nil {
		out = append(out, "webhook-expiry-warnings: "+err.Error())
	}
	if c.Key != "" {
		if _, err := webhooks.ParseKey(c.Key); err != nil {
			out = append(out, "KEYMINT_WEBHOOK_KEY: "+err.Error())
		}
	}
	return out
}

// windows parses ExpiryWarnings: 1 to 8 positive durations up to a year.
func (c *webhooksConfig) windows() ([]time.Duration, error) {
	if strings.TrimSpace(c.ExpiryWarnings) == "" {
		return webhooks.DefaultExpiryWindows, nil
	}
	var out []time.Duration
	for _, f := range strings.Split(c.ExpiryWarnings, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < time.Minute || d > 366*24*time.Hour {
			return nil, fmt.Errorf("%q: want durations from 1m to 8784h, such as 168h,24h", f)
		}
		out = append(out, d)
	}
	if len(out) > 8 {
		return nil, errors.New("at most 8 windows")
	}
	return out, nil
}

// sealer returns the sealer of the webhook key: KEYMINT_WEBHOOK_KEY, else
// the key file, else (embedded store only) DATA_DIR/webhook-key, generated
// on first start. With PostgreSQL and no key, webhooks are off (nil).
func (c *webhooksConfig) sealer(dataDir string, embedded bool, log *slog.Logger) (*webhooks.Sealer, error) {
	var key []byte
	var err error
	switch {
	case c.Key != "":
		key, err = webhooks.ParseKey(c.Key)
	case c.KeyFile != "":
		var b []byte
		if b, err = os.ReadFile(c.KeyFile); err == nil {
			key, err = webhooks.ParseKey(string(b))
		}
	case embedded:
		var created bool
		path := filepath.Join(dataDir, "webhook-key")
		key, created, err = webhooks.LoadOrCreateKeyFile(path)
		if created {
			log.Info("generated a webhook key for the embedded store; back it up with the database", "path", path)
		}
	default:
		log.Info("webhooks are off: no webhook key (set KEYMINT_WEBHOOK_KEY or --webhook-key-file)")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	return webhooks.NewSealer(key)
}
