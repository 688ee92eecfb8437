package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
)

// Redis cut off from two replicas by a network partition (the link down:
// packets dropped silently both ways, connections left open, nothing
// refused; scripts/redis-netns.sh), with the replicas' store poll at an
// hour, so that only the revocation feed's own mechanisms can carry a
// revocation across:
//
//   - detection and catch-up: a token revoked on A is refused by B. B hears
//     nothing on the channel and would poll in an hour: only its feed
//     noticing the silent subscription (no pong) and waking the follower,
//     which reads the store's log, can have done it.
//   - after the heal the feed subscribes again, and the next revocation
//     reaches B too.
//
// Needs root (network namespaces); skipped otherwise.
func TestRevocationAcrossRedisPartition(t *testing.T) {
	t.Parallel()
	rds := redistest.StartNetns(t)
	_, rs := replicaSet(t, 2, rds.URL, func(c *Config) { c.Revocations.Poll = time.Hour })
	a, b := rs[0], rs[1]
	ctx := context.Background()
	valid := func(secret string) bool {
		t.Helper()
		r, err := b.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: secret})
		if err != nil {
			t.Fatalf("validate on B: %v", err)
		}
		return r.GetValid()
	}
	subscribed := func() int { return strings.Count(b.logs.String(), "redis revocation channel subscribed") }
	waitFor(t, "B's feed subscribed", func() bool { return subscribed() > 0 })
	cut, after := mintFull(t, a), mintFull(t, a)
	if !valid(cut.Secret) || !valid(after.Secret) {
		t.Fatal("not valid on B before the revokes")
	}

	rds.Partition()
	revoke(t, a, cut.Token.Id)
	waitFor(t, "B refuses the token revoked during the partition", func() bool { return !valid(cut.Secret) })
	if !strings.Contains(b.logs.String(), "redis revocation channel lost") {
		t.Error("B refused without its feed noticing the partition: the test proves nothing")
	}

	before := subscribed()
	rds.Heal()
	waitFor(t, "B's feed subscribed again after the heal", func() bool { return subscribed() > before })
	revoke(t, a, after.Token.Id)
	waitFor(t, "B refuses a token revoked after the heal", func() bool { return !valid(after.Secret) })
}
