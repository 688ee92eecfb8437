package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keymint/keymint/services/webhooks"
)

// WebhooksConfig is the webhook part of Config: the key sealing signing
// secrets, what URLs may be reached, and the dispatcher's and expiry
// scheduler's bounds.
type WebhooksConfig struct {
	// Key is KEYMINT_WEBHOOK_KEY (env only, like the pepper); KeyFile the
	// file holding it.
	Key          string        `kong:"-"`
	KeyFile      string        `name:"webhook-key-file" env:"KEYMINT_WEBHOOK_KEY_FILE" help:"File with the base64 AES-256 key sealing webhook signing secrets (embedded store: generated in the data dir)."`
	AllowPrivate bool          `name:"webhooks-allow-private" env:"KEYMINT_WEBHOOKS_ALLOW_PRIVATE" help:"Let webhook URLs be http and reach loopback, private and link-local addresses (tests, closed networks)."`
	Timeout      time.Duration `name:"webhook-timeout" env:"KEYMINT_WEBHOOK_TIMEOUT" default:"${webhook_timeout}" help:"Bound on one webhook attempt: connect, TLS, response."`
	Concurrency  uint          `name:"webhook-concurrency" env:"KEYMINT_WEBHOOK_CONCURRENCY" default:"${webhook_concurrency}" help:"Webhook attempts in flight at once per replica."`
	RetryFor     time.Duration `name:"webhook-retry-for" env:"KEYMINT_WEBHOOK_RETRY_FOR" default:"${webhook_retry_for}" help:"How long a webhook delivery is retried (exponential backoff with jitter, up to 1h apart)."`
	DisableAfter time.Duration `name:"webhook-disable-after" env:"KEYMINT_WEBHOOK_DISABLE_AFTER" default:"${webhook_disable_after}" help:"A webhook endpoint failing every attempt this long is disabled."`
	MaxEndpoints uint          `name:"webhook-max-endpoints" env:"KEYMINT_WEBHOOK_MAX_ENDPOINTS" default:"${webhook_max_endpoints}" help:"Webhook endpoints per organization."`
	// ExpiryWarnings is a comma-separated list of durations before expiry.
	ExpiryWarnings string        `name:"webhook-expiry-warnings" env:"KEYMINT_WEBHOOK_EXPIRY_WARNINGS" default:"168h,24h" help:"token.expiring goes out this long before a token expires, comma-separated."`
	Poll           time.Duration `name:"webhook-poll" env:"KEYMINT_WEBHOOK_POLL" default:"${webhook_poll}" help:"How often the webhook outbox is read when it was empty."`
	Lease          time.Duration `name:"webhook-lease" env:"KEYMINT_WEBHOOK_LEASE" default:"0s" help:"How long a replica holds a delivery it is attempting (0: 2×webhook-timeout+30s); after a crash the event goes out again this long later."`
	ScanInterval   time.Duration `name:"webhook-expiry-scan" env:"KEYMINT_WEBHOOK_EXPIRY_SCAN" default:"${webhook_expiry_scan}" help:"How often tokens entering an expiry warning window are looked for."`
}

// problems returns one line per invalid webhook setting.
func (c *WebhooksConfig) problems() []string {
	out := positive(map[string]time.Duration{"webhook-timeout": c.Timeout, "webhook-retry-for": c.RetryFor,
		"webhook-disable-after": c.DisableAfter, "webhook-poll": c.Poll, "webhook-expiry-scan": c.ScanInterval})
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

// Problems is c's every problem, for the webhook commands.
func (c *WebhooksConfig) Problems() []string { return c.problems() }

// windows parses ExpiryWarnings: 1 to 8 positive durations up to a year.
func (c *WebhooksConfig) windows() ([]time.Duration, error) {
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

// Sealer returns the sealer of the webhook key: KEYMINT_WEBHOOK_KEY, else
// the key file, else (embedded store only) DATA_DIR/webhook-key, generated
// on first start. With PostgreSQL and no key, webhooks are off (nil).
func (c *WebhooksConfig) Sealer(dataDir string, embedded bool, log *slog.Logger) (*webhooks.Sealer, error) {
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
