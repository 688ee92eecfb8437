package tokens

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/throttle"
)

// Limits on the optional parts of a token.
const (
	// MaxMetadataBytes caps a token's metadata, protobuf-serialized: it
	// rides in every ValidateToken answer and in the cache.
	MaxMetadataBytes = 4096
	maxExternalIDLen = 256
	maxCIDRs         = 64
	maxUses          = 1_000_000_000_000
	maxRateLimit     = 1_000_000
	minRatePeriod    = time.Second
	maxRatePeriod    = 24 * time.Hour
)

// Limits are a token's optional restrictions and the data ValidateToken
// returns with it, as a caller asks for them.
type Limits struct {
	ExternalID string
	Metadata   *structpb.Struct
	// AllowedCIDRs are CIDR ranges or single addresses.
	AllowedCIDRs []string
	// RemainingUses is nil for unlimited uses.
	RemainingUses *int64
	// RateLimit uses per RatePeriod; zero for none.
	RateLimit  int64
	RatePeriod time.Duration
}

// limits are Limits checked and in stored form.
type limits struct {
	externalID string
	metadata   []byte
	cidrs      []string
	uses       *int64
	rate       int64
	period     time.Duration
}

func (l Limits) normalize() (limits, error) {
	var out limits
	if utf8.RuneCountInString(l.ExternalID) > maxExternalIDLen || !utf8.ValidString(l.ExternalID) {
		return out, fault.Newf(fault.InvalidArgument, "externalId must be at most %d characters of valid UTF-8", maxExternalIDLen)
	}
	out.externalID = l.ExternalID
	if l.Metadata != nil && len(l.Metadata.GetFields()) > 0 {
		if proto.Size(l.Metadata) > MaxMetadataBytes {
			return out, fault.Newf(fault.InvalidArgument, "metadata must be at most %d bytes serialized", MaxMetadataBytes)
		}
		// encoding/json sorts keys: the stored form is stable.
		b, err := json.Marshal(l.Metadata.AsMap())
		if err != nil {
			return out, fault.New(fault.InvalidArgument, "metadata is not representable as JSON")
		}
		out.metadata = b
	}
	var err error
	if out.cidrs, err = NormalizeCIDRs(l.AllowedCIDRs); err != nil {
		return out, err
	}
	if l.RemainingUses != nil {
		if n := *l.RemainingUses; n < 1 || n > maxUses {
			return out, fault.Newf(fault.InvalidArgument, "remainingUses must be from 1 to %d", int64(maxUses))
		}
		out.uses = l.RemainingUses
	}
	switch {
	case l.RateLimit == 0 && l.RatePeriod == 0:
	case l.RateLimit < 1 || l.RateLimit > maxRateLimit:
		return out, fault.Newf(fault.InvalidArgument, "rateLimit.limit must be from 1 to %d", maxRateLimit)
	case l.RatePeriod < minRatePeriod || l.RatePeriod > maxRatePeriod || l.RatePeriod%time.Microsecond != 0:
		return out, fault.New(fault.InvalidArgument, "rateLimit.period must be from 1s to 24h, in whole microseconds")
	default:
		out.rate, out.period = l.RateLimit, l.RatePeriod
	}
	return out, nil
}

// apply sets l on a token about to be created (its ID set).
func (l limits) apply(t *store.Token) {
	t.ExternalID, t.Metadata, t.AllowedCIDRs = l.externalID, l.metadata, l.cidrs
	t.RateLimit, t.RatePeriod = l.rate, l.period
	if l.uses != nil {
		t.UsagePool, t.RemainingUses = t.ID, *l.uses
	}
}

// NormalizeCIDRs parses CIDR ranges and single addresses into canonical
// masked prefixes ("10.1.2.3" is "10.1.2.3/32"), unique, in the order given.
func NormalizeCIDRs(in []string) ([]string, error) {
	if len(in) > maxCIDRs {
		return nil, fault.Newf(fault.InvalidArgument, "at most %d allowedCidrs", maxCIDRs)
	}
	var out []string
	// Errors name an entry by its position, never its text: a caller may
	// paste a secret into any field, and error bodies are never to echo one.
	for i, c := range in {
		c = strings.TrimSpace(c)
		var p netip.Prefix
		if strings.Contains(c, "/") {
			q, err := netip.ParsePrefix(c)
			if err != nil || q.Addr().Zone() != "" {
				return nil, fault.Newf(fault.InvalidArgument, "allowedCidrs[%d] is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32", i)
			}
			p = q
		} else {
			a, err := netip.ParseAddr(c)
			if err != nil || a.Zone() != "" {
				return nil, fault.Newf(fault.InvalidArgument, "allowedCidrs[%d] is not an address or CIDR range", i)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		s := p.Masked().String()
		dup := false
		for _, o := range out {
			dup = dup || o == s
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out, nil
}

// ParseCIDRs parses stored (canonical) prefixes.
func ParseCIDRs(in []string) ([]netip.Prefix, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, len(in))
	for i, c := range in {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

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

// DefaultLeakReportLimit bounds leak reports per client address: 10 at once,
// then one every 6 s.
var DefaultLeakReportLimit = throttle.Limit{Burst: 10, Interval: 6 * time.Second}

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
