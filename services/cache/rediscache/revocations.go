package rediscache

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// RevocationSink receives revocations heard on the channel: every replica's
// WatchRevocations hub.
type RevocationSink interface {
	// Deliver hands one revoked token id to the replica's watchers.
	Deliver(tokenID string, at time.Time)
	// Reset ends every watcher's stream: after a resubscription messages may
	// have been lost, and only a fresh subscription (which clears the
	// watcher's cache) is safe.
	Reset()
}

// RevocationFeed carries revoked token ids between replicas on the Redis
// channel PREFIX+"revoked", so a WatchRevocations client connected to any
// replica hears revocations made on every replica. It carries ids only,
// never a digest or secret.
type RevocationFeed struct {
	client  redis.UniversalClient
	channel string
	timeout time.Duration
	log     *slog.Logger
}

// revokedV1 tags a message: 0x01, 8 bytes of unix nanoseconds, the token id.
const revokedV1 = 0x01

// NewRevocationFeed returns a feed on client under prefix (DefaultPrefix if
// empty); timeout bounds one publish.
func NewRevocationFeed(client redis.UniversalClient, prefix string, timeout time.Duration, log *slog.Logger) *RevocationFeed {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RevocationFeed{client: client, channel: prefix + "revoked", timeout: timeout, log: log}
}

// Publish announces one revocation to every replica, this one included.
func (f *RevocationFeed) Publish(ctx context.Context, tokenID string, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*f.timeout)
	defer cancel()
	msg := make([]byte, 9, 9+len(tokenID))
	msg[0] = revokedV1
	binary.BigEndian.PutUint64(msg[1:9], uint64(at.UnixNano()))
	msg = append(msg, tokenID...)
	if err := f.client.Publish(ctx, f.channel, msg).Err(); err != nil {
		return fmt.Errorf("redis publish revocation: %w", err)
	}
	return nil
}

// Run delivers revocations to sink until ctx ends. Every subscription after
// the first resets the sink's watchers, since messages sent while the
// subscription was down are lost.
func (f *RevocationFeed) Run(ctx context.Context, sink RevocationSink) {
	ps, ch := subscribe(ctx, f.client, f.channel)
	defer ps.Close()
	subscribed := false
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				if subscribed {
					sink.Reset()
					f.log.Info("redis revocation channel resubscribed; watch streams reset", "channel", f.channel)
				}
				subscribed = true
			case *redis.Message:
				p := m.Payload
				if len(p) < 10 || p[0] != revokedV1 {
					f.log.Warn("rediscache: ignoring malformed revocation message")
					continue
				}
				at := time.Unix(0, int64(binary.BigEndian.Uint64([]byte(p[1:9]))))
				sink.Deliver(p[9:], at)
			}
		}
	}
}
