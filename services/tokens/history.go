package tokens

import (
	"context"
	"errors"
	"slices"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// History bounds: a chain longer than this is cut (the asked-for token is
// always in it), and only the newest events are returned.
const (
	maxChain         = 50
	maxHistoryEvents = 50
)

// History is a token's rotation chain, oldest first, and the newest audit
// events about any token of it.
type History struct {
	Chain  []store.Token
	Events []store.AuditEvent
}

// History returns the rotation chain and recent events of a token the
// caller may see. The owner sees events about their own tokens whoever
// caused them: the token's page is theirs.
func (s *Service) History(ctx context.Context, id string) (History, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return History{}, err
	}
	t, err := s.visible(ctx, p, id)
	if err != nil {
		return History{}, err
	}
	chain := []store.Token{t}
	// Back: the token whose rotated_to_id is the chain's first.
	for len(chain) < maxChain {
		prev, err := s.store.ListTokens(ctx, store.TokenFilter{OrgID: t.OrgID, UserID: t.UserID, RotatedToID: chain[0].ID, Limit: 1})
		if err != nil {
			return History{}, fault.StoreFailure(err, "list token predecessors")
		}
		if len(prev) == 0 {
			break
		}
		chain = slices.Insert(chain, 0, prev[0])
	}
	// Forward: follow rotated_to_id.
	for last := chain[len(chain)-1]; last.RotatedToID != "" && len(chain) < maxChain; last = chain[len(chain)-1] {
		next, err := s.store.GetToken(ctx, last.RotatedToID)
		if errors.Is(err, store.ErrNotFound) || err == nil && (next.OrgID != t.OrgID || next.UserID != t.UserID) {
			break
		}
		if err != nil {
			return History{}, fault.StoreFailure(err, "get token successor")
		}
		chain = append(chain, next)
	}
	ids := make([]string, len(chain))
	for i, c := range chain {
		ids[i] = c.ID
	}
	evs, err := s.store.ListAuditEvents(ctx, store.AuditFilter{OrgID: t.OrgID, TargetIDs: ids, Limit: maxHistoryEvents})
	if err != nil {
		return History{}, fault.StoreFailure(err, "list token events")
	}
	return History{Chain: chain, Events: evs}, nil
}
