package tokens

import (
	"time"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// applyLifetimePolicy gives a token without an expiry the org's default
// lifetime (or its maximum), and refuses an expiry beyond the maximum.
func applyLifetimePolicy(p store.OrgPolicy, now, expires time.Time) (time.Time, error) {
	if expires.IsZero() {
		switch {
		case p.DefaultTokenLifetime > 0:
			expires = now.Add(p.DefaultTokenLifetime)
		case p.MaxTokenLifetime > 0:
			expires = now.Add(p.MaxTokenLifetime)
		}
	}
	if p.MaxTokenLifetime > 0 && expires.After(now.Add(p.MaxTokenLifetime)) {
		return time.Time{}, fault.Newf(fault.InvalidArgument,
			"the token would expire after the organization's maximum token lifetime of %s", p.MaxTokenLifetime)
	}
	return expires, nil
}
