package cache

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// KeySize is the size of a cache key: an HMAC-SHA-256 digest.
const KeySize = 32

// Key is a token's HMAC digest. The cache never sees a token's secret: the
// digest is what the store looks tokens up by, so it is safe to keep in
// Redis and in logs of Redis traffic.
type Key [KeySize]byte

// Entry is everything ValidateToken answers from, so that scope, expiry and
// revocation checks run on cached data every time: a cached answer for one
// scope never authorizes another, and an expired token is refused at the
// instant it expires whatever its entry's TTL. Entries are shared between
// goroutines once cached: treat them as read-only.
type Entry struct {
	// Key is the digest the store holds for the token (under PepperID), or,
	// for a negative entry, the digest under the primary pepper that was
	// looked up.
	Key Key
	// Negative marks a well-formed token the store does not know.
	Negative bool
	TokenID  string
	UserID   string
	OrgID    string
	PepperID string
	// Scopes are sorted and unique.
	Scopes []string
	// Zero ExpiresAt and RevokedAt mean "not set".
	ExpiresAt time.Time
	RevokedAt time.Time
	// ExternalID and Metadata are returned with a valid answer. Metadata
	// is a google.protobuf.Struct in protobuf wire form; nil for none.
	ExternalID string
	Metadata   []byte
	// AllowedCIDRs, when set, are the only ranges the token may be used
	// from.
	AllowedCIDRs []netip.Prefix
	// UsagePool names the token whose counter this token's uses draw from;
	// empty for unlimited uses. RemainingUses is that counter as loaded (a
	// hint for sizing leases: the live count is never cached).
	UsagePool     string
	RemainingUses int64
	// RateLimit uses per RatePeriod; zero for no rate limit.
	RateLimit  int64
	RatePeriod time.Duration
	// CreatedAt is when the token was minted (RFC 7662 introspection's
	// iat); zero in entries written before it was cached.
	CreatedAt time.Time
	// OwnerKind is the owner's kind (store.KindUser or
	// store.KindServiceAccount; empty in entries written before it was
	// cached, meaning a user). RevokeReason is why a revoked token was
	// revoked (store.RevokeReasonOwnerDisabled and the like; empty for a
	// plain revocation).
	OwnerKind    string
	RevokeReason string
}

// Live reports whether e is a token neither revoked nor expired at now.
func (e *Entry) Live(now time.Time) bool {
	return !e.Negative && e.RevokedAt.IsZero() && (e.ExpiresAt.IsZero() || now.Before(e.ExpiresAt))
}

// ttl returns how long e may be cached when the level's own TTL is base: a
// live token's entry never outlives the token's expiry; a negative entry
// lives negative (never longer than base); revoked and expired tokens keep
// their final answer for base.
func (e *Entry) ttl(now time.Time, base, negative time.Duration) time.Duration {
	if e.Negative {
		return min(base, negative)
	}
	if e.RevokedAt.IsZero() && !e.ExpiresAt.IsZero() {
		if left := e.ExpiresAt.Sub(now); left > 0 {
			return min(base, left)
		}
	}
	return base
}

// The Redis value format: a version byte, then protobuf wire-format fields.
// Readers skip fields they do not know, so later fields (metadata, external
// id, CIDR allow-list, limits) can be added without a version bump; a new
// version byte is for changes old readers must not misread.
const encodingV1 = 1

// Field numbers of the v1 encoding. Never reuse a number.
const (
	fieldKey       = 1
	fieldNegative  = 2
	fieldTokenID   = 3
	fieldUserID    = 4
	fieldOrgID     = 5
	fieldPepperID  = 6
	fieldScope     = 7 // repeated
	fieldExpiresAt = 8 // unix microseconds
	fieldRevokedAt = 9 // unix microseconds
	// Token lifecycle fields. An older reader skips them: roll every
	// replica out before minting tokens that use them.
	fieldExternalID    = 10
	fieldMetadata      = 11 // google.protobuf.Struct, wire form
	fieldCIDR          = 12 // repeated, netip.Prefix text form
	fieldUsagePool     = 13
	fieldRemainingUses = 14 // zigzag
	fieldRateLimit     = 15
	fieldRatePeriod    = 16 // microseconds
	fieldCreatedAt     = 17 // unix microseconds
	fieldOwnerKind     = 18
	fieldRevokeReason  = 19
)

// ErrBadEncoding means a cached value could not be decoded.
var ErrBadEncoding = errors.New("cache: bad entry encoding")

// MarshalBinary encodes e in the versioned Redis value format.
func (e *Entry) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+len(e.TokenID)+len(e.UserID)+len(e.OrgID)+16*len(e.Scopes)+len(e.ExternalID)+
		len(e.Metadata)+len(e.UsagePool)+24*len(e.AllowedCIDRs)+len(e.OwnerKind)+len(e.RevokeReason))
	b = append(b, encodingV1)
	b = protowire.AppendTag(b, fieldKey, protowire.BytesType)
	b = protowire.AppendBytes(b, e.Key[:])
	if e.Negative {
		b = protowire.AppendTag(b, fieldNegative, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	for _, f := range []struct {
		num protowire.Number
		v   string
	}{{fieldTokenID, e.TokenID}, {fieldUserID, e.UserID}, {fieldOrgID, e.OrgID}, {fieldPepperID, e.PepperID},
		{fieldExternalID, e.ExternalID}, {fieldUsagePool, e.UsagePool}, {fieldOwnerKind, e.OwnerKind},
		{fieldRevokeReason, e.RevokeReason}} {
		if f.v != "" {
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendString(b, f.v)
		}
	}
	for _, s := range e.Scopes {
		b = protowire.AppendTag(b, fieldScope, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, f := range []struct {
		num protowire.Number
		v   time.Time
	}{{fieldExpiresAt, e.ExpiresAt}, {fieldRevokedAt, e.RevokedAt}, {fieldCreatedAt, e.CreatedAt}} {
		if !f.v.IsZero() {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeZigZag(f.v.UnixMicro()))
		}
	}
	if len(e.Metadata) > 0 {
		b = protowire.AppendTag(b, fieldMetadata, protowire.BytesType)
		b = protowire.AppendBytes(b, e.Metadata)
	}
	for _, p := range e.AllowedCIDRs {
		b = protowire.AppendTag(b, fieldCIDR, protowire.BytesType)
		b = protowire.AppendString(b, p.String())
	}
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{fieldRemainingUses, e.RemainingUses}, {fieldRateLimit, e.RateLimit}, {fieldRatePeriod, e.RatePeriod.Microseconds()}} {
		if f.v != 0 {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeZigZag(f.v))
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a value written by MarshalBinary.
func (e *Entry) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != encodingV1 {
		return fmt.Errorf("%w: unknown version", ErrBadEncoding)
	}
	b = b[1:]
	*e = Entry{}
	haveKey := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrBadEncoding, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num >= fieldKey && num <= fieldScope && num != fieldNegative ||
			num == fieldExternalID || num == fieldMetadata || num == fieldCIDR || num == fieldUsagePool ||
			num == fieldOwnerKind || num == fieldRevokeReason):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", ErrBadEncoding, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case fieldKey:
				if len(v) != KeySize {
					return fmt.Errorf("%w: key is %d bytes", ErrBadEncoding, len(v))
				}
				copy(e.Key[:], v)
				haveKey = true
			case fieldTokenID:
				e.TokenID = string(v)
			case fieldUserID:
				e.UserID = string(v)
			case fieldOrgID:
				e.OrgID = string(v)
			case fieldPepperID:
				e.PepperID = string(v)
			case fieldScope:
				e.Scopes = append(e.Scopes, string(v))
			case fieldExternalID:
				e.ExternalID = string(v)
			case fieldMetadata:
				e.Metadata = append([]byte(nil), v...)
			case fieldCIDR:
				p, err := netip.ParsePrefix(string(v))
				if err != nil {
					return fmt.Errorf("%w: allowed cidr: %v", ErrBadEncoding, err)
				}
				e.AllowedCIDRs = append(e.AllowedCIDRs, p)
			case fieldUsagePool:
				e.UsagePool = string(v)
			case fieldOwnerKind:
				e.OwnerKind = string(v)
			case fieldRevokeReason:
				e.RevokeReason = string(v)
			}
		case typ == protowire.VarintType && (num == fieldRemainingUses || num == fieldRateLimit || num == fieldRatePeriod):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", ErrBadEncoding, protowire.ParseError(n))
			}
			b = b[n:]
			switch x := protowire.DecodeZigZag(v); num {
			case fieldRemainingUses:
				e.RemainingUses = x
			case fieldRateLimit:
				e.RateLimit = x
			case fieldRatePeriod:
				e.RatePeriod = time.Duration(x) * time.Microsecond
			}
		case typ == protowire.VarintType && (num == fieldNegative || num == fieldExpiresAt || num == fieldRevokedAt || num == fieldCreatedAt):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", ErrBadEncoding, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case fieldNegative:
				e.Negative = v != 0
			case fieldExpiresAt:
				e.ExpiresAt = time.UnixMicro(protowire.DecodeZigZag(v)).UTC()
			case fieldRevokedAt:
				e.RevokedAt = time.UnixMicro(protowire.DecodeZigZag(v)).UTC()
			case fieldCreatedAt:
				e.CreatedAt = time.UnixMicro(protowire.DecodeZigZag(v)).UTC()
			}
		default:
			// A field from a later writer: skip it.
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: %v", ErrBadEncoding, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if !haveKey {
		return fmt.Errorf("%w: no key", ErrBadEncoding)
	}
	return nil
}
