package main

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

// revocationConfig is the revocation log follower's and WatchRevocations'
// part of Config.
type revocationConfig struct {
	Poll                time.Duration
	Retention           time.Duration
	Heartbeat           time.Duration
	MaxStreams          uint
	MaxStreamsPerClient uint
	PublishQueue        uint
	RequireScope        bool
}

// problems returns one line per invalid setting.
func (c *revocationConfig) problems(set map[string]bool) []string {
	var out []string
	if set["revocation-poll"] && (c.Poll <= 0 || c.Poll > 10*time.Second) {
		out = append(out, "revocation-poll: want a positive duration up to 10s (it bounds propagation without Redis; 250ms is usual)")
	}
	if set["revocation-log-retention"] && c.Retention < time.Minute {
		out = append(out, "revocation-log-retention: want at least 1m")
	}
	if set["watch-heartbeat"] && (c.Heartbeat < 10*time.Millisecond || c.Heartbeat > 30*time.Second) {
		out = append(out, "watch-heartbeat: want a duration from 10ms to 30s")
	}
	for _, n := range []struct {
		name string
		v    uint
	}{{"watch-max-streams", c.MaxStreams}, {"watch-max-streams-per-client", c.MaxStreamsPerClient}, {"revocation-publish-queue", c.PublishQueue}} {
		if set[n.name] && (n.v == 0 || n.v > 1_000_000) {
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
