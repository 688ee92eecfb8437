package tokens

import (
	"context"

	"github.com/keymint/keymint/services/store"
)

// Usage quotas: a usage-limited token draws each validation from its pool's
// counter (UsageCounter; services/quota leases them through Redis).

// storeUses counts uses in the store alone, when no UsageCounter is set.
type storeUses struct{ s Store }

func (u storeUses) Take(ctx context.Context, pool string, _ int64) (bool, int64, error) {
	taken, left, err := u.s.TakeTokenUses(ctx, pool, 1)
	return taken == 1, left, err
}

func (storeUses) Leased(context.Context, []string) map[string]int64 { return nil }

// UsesLeft returns the uses left of each usage pool among list: the pool
// row's count in the store plus what the counter holds outside it. A pool
// that cannot be read is left out.
func (s *Service) UsesLeft(ctx context.Context, list []store.Token) map[string]int64 {
	out := map[string]int64{}
	var pools []string
	for _, t := range list {
		if t.UsagePool == "" {
			continue
		}
		if _, done := out[t.UsagePool]; done {
			continue
		}
		if t.UsagePool == t.ID {
			out[t.ID] = t.RemainingUses
		} else if pt, err := s.store.GetToken(ctx, t.UsagePool); err == nil {
			out[t.UsagePool] = pt.RemainingUses
		} else {
			continue
		}
		pools = append(pools, t.UsagePool)
	}
	for pool, n := range s.uses.Leased(ctx, pools) {
		out[pool] += n
	}
	return out
}
