package tokens

import (
	"encoding/json"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Bounds on the optional parts of a token.
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

// Options are a token's optional parts, as a caller asks for them: its
// restrictions (allowed addresses, usage quota, rate limit) and the data
// ValidateToken returns with it (external id, metadata).
type Options struct {
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

// options are Options checked and in stored form.
type options struct {
	externalID string
	metadata   []byte
	cidrs      []string
	uses       *int64
	rate       int64
	period     time.Duration
}

func (l Options) normalize() (options, error) {
	var out options
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
func (l options) apply(t *store.Token) {
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
