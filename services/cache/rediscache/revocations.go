package rediscache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/cache"
)

// Defaults of RevocationFeedConfig's zero values.
const (
	// DefaultPingInterval is how often the subscription connection is
	// pinged: go-redis's own health check writes a PING and never waits for
	// the answer, so a hung node (SIGSTOP, a frozen host) goes unnoticed.
	DefaultPingInterval = 250 * time.Millisecond
	// DefaultDeadAfter is how long the subscription may stay silent (no
	// message, no pong) before it is closed and opened again, which on
	// Sentinel or Cluster reaches the new master or node.
	DefaultDeadAfter = 750 * time.Millisecond
	// DefaultRevocationTimeout bounds one revocation call to Redis (a
	// publish, a tombstone): longer than lookups get, since revocations are
	// rare and matter.
	DefaultRevocationTimeout = 500 * time.Millisecond
)

// Revocation is one revocation log row as the channel carries it: the
// sequence, the token id, the cache key and, for a rotation, the new expiry.
// Never a secret.
type Revocation struct {
	Seq      int64
	TokenID  string
	Key      cache.Key
	At       time.Time
	NotAfter time.Time
	Rotated  bool
}

// RevocationSink is a replica's revocation follower (tokens.Revocations).
type RevocationSink interface {
	// Offer hands over a revocation heard on the channel; the sink applies
	// it in sequence order and reads the store's log on a gap.
	Offer(Revocation)
	// Wake says messages may have been lost (a (re)subscription, a silent
	// channel): the sink catches up from the store's log now.
	Wake()
}

// RevocationFeedConfig configures a RevocationFeed.
type RevocationFeedConfig struct {
	// Client carries the subscription and publishes. Its read timeout must
	// allow Timeout (see NewRevocationClient).
	Client redis.UniversalClient
	// Prefix is the key prefix (DefaultPrefix if empty); the channel is
	// PREFIX+"revocations".
	Prefix string
	// Timeout bounds one publish; zero is DefaultRevocationTimeout.
	Timeout time.Duration
	// PingInterval and DeadAfter detect a hung subscription (see the
	// defaults).
	PingInterval time.Duration
	DeadAfter    time.Duration
	Logger       *slog.Logger
}

// RevocationFeed is the fast path of the revocation log between replicas:
// every replica publishes the rows it writes on one Redis channel, and
// every replica's follower applies what it hears (the store's log stays
// the source of truth: a gap, a resubscription or a silent channel makes
// the follower catch up from it).
type RevocationFeed struct {
	client       redis.UniversalClient
	channel      string
	timeout      time.Duration
	pingInterval time.Duration
	deadAfter    time.Duration
	log          *slog.Logger
}

// Message layout: a version byte, seq, at and not-after (8 bytes each,
// big-endian, unix nanoseconds; 0 for none), a flags byte (bit 0:
// rotated), the 32-byte key, then the token id.
const (
	revocationV2   = 0x02
	revocationHead = 1 + 8 + 8 + 8 + 1 + cache.KeySize
	flagRotated    = 0x01
)

// NewRevocationFeed returns a feed on cfg.Client.
func NewRevocationFeed(cfg RevocationFeedConfig) *RevocationFeed {
	f := &RevocationFeed{client: cfg.Client, timeout: cfg.Timeout, pingInterval: cfg.PingInterval, deadAfter: cfg.DeadAfter, log: cfg.Logger}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	f.channel = prefix + "revocations"
	if f.timeout <= 0 {
		f.timeout = DefaultRevocationTimeout
	}
	if f.pingInterval <= 0 {
		f.pingInterval = DefaultPingInterval
	}
	if f.deadAfter <= 0 {
		f.deadAfter = DefaultDeadAfter
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f
}

// Channel is the feed's Redis channel.
func (f *RevocationFeed) Channel() string { return f.channel }

func encodeRevocation(r Revocation) []byte {
	msg := make([]byte, revocationHead, revocationHead+len(r.TokenID))
	msg[0] = revocationV2
	binary.BigEndian.PutUint64(msg[1:9], uint64(r.Seq))
	binary.BigEndian.PutUint64(msg[9:17], uint64(nanos(r.At)))
	binary.BigEndian.PutUint64(msg[17:25], uint64(nanos(r.NotAfter)))
	if r.Rotated {
		msg[25] = flagRotated
	}
	copy(msg[26:revocationHead], r.Key[:])
	return append(msg, r.TokenID...)
}

func decodeRevocation(p string) (Revocation, bool) {
	if len(p) <= revocationHead || p[0] != revocationV2 {
		return Revocation{}, false
	}
	b := []byte(p)
	r := Revocation{
		Seq:      int64(binary.BigEndian.Uint64(b[1:9])),
		At:       fromNanos(int64(binary.BigEndian.Uint64(b[9:17]))),
		NotAfter: fromNanos(int64(binary.BigEndian.Uint64(b[17:25]))),
		Rotated:  b[25]&flagRotated != 0,
		TokenID:  p[revocationHead:],
	}
	copy(r.Key[:], b[26:revocationHead])
	return r, r.Seq > 0
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Publish announces one revocation log row to every replica.
func (f *RevocationFeed) Publish(ctx context.Context, r Revocation) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := f.client.Publish(ctx, f.channel, encodeRevocation(r)).Err(); err != nil {
		return fmt.Errorf("redis publish revocation: %w", err)
	}
	return nil
}

// Run delivers revocations to sink until ctx ends. Every subscription
// wakes the sink (messages published while it was down are lost), and a
// subscription that answers neither a message nor a ping within DeadAfter
// is closed and opened again on a fresh connection.
func (f *RevocationFeed) Run(ctx context.Context, sink RevocationSink) {
	for ctx.Err() == nil {
		reason := f.follow(ctx, sink)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("redis revocation channel lost; resubscribing and reading the store's log meanwhile", "channel", f.channel, "reason", reason)
		sink.Wake()
		if cc, ok := f.client.(*redis.ClusterClient); ok {
			// The node holding the channel may have failed over: ask the
			// cluster where it is now before subscribing again.
			rctx, cancel := context.WithTimeout(ctx, f.deadAfter)
			cc.ReloadState(rctx)
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.pingInterval):
		}
	}
}

// errSilent means the subscription answered nothing within DeadAfter.
var errSilent = errors.New("no message or pong within the dead-after bound")

// follow runs one subscription until it fails or falls silent.
func (f *RevocationFeed) follow(ctx context.Context, sink RevocationSink) string {
	ps := f.client.Subscribe(ctx, f.channel)
	defer ps.Close()
	heard := time.Now()
	nextPing := heard
	for {
		now := time.Now()
		if now.Sub(heard) > f.deadAfter {
			return errSilent.Error()
		}
		if !now.Before(nextPing) {
			// Written on the subscription's own connection: the pong comes
			// back only if the node holding it still works.
			if err := ps.Ping(ctx); err != nil && ctx.Err() == nil {
				return "ping: " + err.Error()
			}
			nextPing = now.Add(f.pingInterval)
		}
		wait := min(time.Until(nextPing), time.Until(heard.Add(f.deadAfter)))
		msg, err := ps.ReceiveTimeout(ctx, max(wait, time.Millisecond))
		if ctx.Err() != nil {
			return "stopped"
		}
		if err != nil {
			var nerr interface{ Timeout() bool }
			if errors.As(err, &nerr) && nerr.Timeout() {
				continue // checked against DeadAfter above
			}
			return "receive: " + err.Error()
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				f.log.Info("redis revocation channel subscribed", "channel", f.channel)
				sink.Wake()
			}
		case *redis.Message:
			r, ok := decodeRevocation(m.Payload)
			if !ok {
				f.log.Warn("rediscache: ignoring malformed revocation message")
				continue
			}
			sink.Offer(r)
		}
	}
}

// NewRevocationClient returns a client for revocation calls (the feed, and
// Remote's tombstones) on the Redis raw names: the same servers as the
// validation path's client, but with timeouts that allow timeout per call.
// go-redis bounds each read by the connection's ReadTimeout whatever the
// context allows, so the validation client's tens of milliseconds would cut
// a revocation call short.
func NewRevocationClient(raw string, timeout time.Duration) (redis.UniversalClient, error) {
	if timeout <= 0 {
		timeout = DefaultRevocationTimeout
	}
	o, err := ParseURL(raw, timeout)
	if err != nil {
		return nil, err
	}
	o.PoolSize = 4
	return redis.NewUniversalClient(o), nil
}
