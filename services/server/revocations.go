package server

import (
	"context"
	"fmt"
	"time"

	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/tokens"
)

// defaultRevocationRetention is how long revocation log rows are kept: a
// follower disconnected for longer resyncs (clears its cache) instead.
const defaultRevocationRetention = 24 * time.Hour

// RevocationConfig is the revocation log follower's and WatchRevocations'
// part of Config.
type RevocationConfig struct {
	Poll                time.Duration `name:"revocation-poll" env:"KEYMINT_REVOCATION_POLL" default:"${revocation_poll}" help:"How often a replica reads the revocation log for rows it missed (the bound without Redis)."`
	Retention           time.Duration `name:"revocation-log-retention" env:"KEYMINT_REVOCATION_LOG_RETENTION" default:"${revocation_log_retention}" help:"How long revocation log rows are kept (followers further behind resync)."`
	Heartbeat           time.Duration `name:"watch-heartbeat" env:"KEYMINT_WATCH_HEARTBEAT" default:"${watch_heartbeat}" help:"WatchRevocations heartbeat interval."`
	MaxStreams          uint          `name:"watch-max-streams" env:"KEYMINT_WATCH_MAX_STREAMS" default:"${watch_max_streams}" help:"WatchRevocations streams per replica."`
	MaxStreamsPerClient uint          `name:"watch-max-streams-per-client" env:"KEYMINT_WATCH_MAX_STREAMS_PER_CLIENT" default:"${watch_max_streams_per_client}" help:"WatchRevocations streams per client address."`
	RequireScope        bool          `name:"watch-require-scope" env:"KEYMINT_WATCH_REQUIRE_SCOPE" help:"WatchRevocations needs a token with the keymint:watch scope."`
}

// problems returns one line per invalid setting.
func (c *RevocationConfig) problems() []string {
	var out []string
	if c.Poll <= 0 || c.Poll > 10*time.Second {
		out = append(out, "revocation-poll: want a positive duration up to 10s (it bounds propagation without Redis; 250ms is usual)")
	}
	if c.Retention < time.Minute {
		out = append(out, "revocation-log-retention: want at least 1m")
	}
	if c.Heartbeat < 10*time.Millisecond || c.Heartbeat > 30*time.Second {
		out = append(out, "watch-heartbeat: want a duration from 10ms to 30s")
	}
	for _, n := range []struct {
		name string
		v    uint
	}{{"watch-max-streams", c.MaxStreams}, {"watch-max-streams-per-client", c.MaxStreamsPerClient}} {
		if n.v == 0 || n.v > 1_000_000 {
			out = append(out, fmt.Sprintf("%s: want 1 to 1000000", n.name))
		}
	}
	return out
}

// feedSink hands Redis revocation messages to the follower.
type feedSink struct {
	ctx  context.Context
	revs *tokens.Revocations
}

func (f feedSink) Offer(r rediscache.Revocation) {
	f.revs.Offer(f.ctx, tokens.Revocation{Seq: r.Seq, TokenID: r.TokenID, Key: r.Key, At: r.At, Rotated: r.Rotated, NotAfter: r.NotAfter})
}

func (f feedSink) Wake() { f.revs.Wake() }

// toFeed is a follower revocation in the feed's form.
func toFeed(v tokens.Revocation) rediscache.Revocation {
	return rediscache.Revocation{Seq: v.Seq, TokenID: v.TokenID, Key: v.Key, At: v.At, Rotated: v.Rotated, NotAfter: v.NotAfter}
}
