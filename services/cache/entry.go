package cache

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

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

// The Redis value format: a version byte, then protobuf wire-format fields,
// described once by entryFields. Readers skip fields they do not know, so
// later fields (metadata, external id, CIDR allow-list, limits) can be added
// without a version bump; a new version byte is for changes old readers must
// not misread. A value of an unknown version does not decode
// (ErrBadEncoding), which the Redis level answers as a miss: a reader never
// guesses at a format it does not know.
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
	fieldExpiresAt = 8 // unix microseconds, zigzag
	fieldRevokedAt = 9 // unix microseconds, zigzag
	// Token lifecycle fields. An older reader skips them: roll every
	// replica out before minting tokens that use them.
	fieldExternalID    = 10
	fieldMetadata      = 11 // google.protobuf.Struct, wire form
	fieldCIDR          = 12 // repeated, netip.Prefix text form
	fieldUsagePool     = 13
	fieldRemainingUses = 14 // zigzag
	fieldRateLimit     = 15 // zigzag
	fieldRatePeriod    = 16 // microseconds, zigzag
	fieldCreatedAt     = 17 // unix microseconds, zigzag
	fieldOwnerKind     = 18
	fieldRevokeReason  = 19
)

// ErrBadEncoding means a cached value could not be decoded.
var ErrBadEncoding = errors.New("cache: bad entry encoding")

// entryField is one field of the v1 encoding: its number, its wire type
// (BytesType or VarintType), how it is appended from an Entry (nothing when
// unset) and how a value of that type is read into one. A value of a known
// number but another wire type is skipped like an unknown field. bytes
// takes its text through str, which either copies v or, when decoding an
// immutable string (UnmarshalString), shares its memory.
type entryField struct {
	num    protowire.Number
	typ    protowire.Type
	append func(b []byte, e *Entry) []byte
	bytes  func(e *Entry, v []byte, str func([]byte) string) error
	varint func(e *Entry, v uint64)
}

// copiedString and sharedString are the two ways a decoded field's text is
// made: a copy of the bytes, or (only for bytes that are a view of an
// immutable string) the same memory.
func copiedString(v []byte) string { return string(v) }

func sharedString(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// entryFields is the v1 format, in field-number order.
var entryFields = [...]entryField{
	{num: fieldKey, typ: protowire.BytesType,
		append: func(b []byte, e *Entry) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, fieldKey, protowire.BytesType), e.Key[:])
		},
		bytes: func(e *Entry, v []byte, _ func([]byte) string) error {
			if len(v) != KeySize {
				return fmt.Errorf("%w: key is %d bytes", ErrBadEncoding, len(v))
			}
			copy(e.Key[:], v)
			return nil
		}},
	{num: fieldNegative, typ: protowire.VarintType,
		append: func(b []byte, e *Entry) []byte {
			if !e.Negative {
				return b
			}
			return protowire.AppendVarint(protowire.AppendTag(b, fieldNegative, protowire.VarintType), 1)
		},
		varint: func(e *Entry, v uint64) { e.Negative = v != 0 }},
	stringField(fieldTokenID, func(e *Entry) *string { return &e.TokenID }),
	stringField(fieldUserID, func(e *Entry) *string { return &e.UserID }),
	stringField(fieldOrgID, func(e *Entry) *string { return &e.OrgID }),
	stringField(fieldPepperID, func(e *Entry) *string { return &e.PepperID }),
	{num: fieldScope, typ: protowire.BytesType,
		append: func(b []byte, e *Entry) []byte {
			for _, s := range e.Scopes {
				b = protowire.AppendString(protowire.AppendTag(b, fieldScope, protowire.BytesType), s)
			}
			return b
		},
		bytes: func(e *Entry, v []byte, str func([]byte) string) error {
			e.Scopes = append(e.Scopes, str(v))
			return nil
		}},
	timeField(fieldExpiresAt, func(e *Entry) *time.Time { return &e.ExpiresAt }),
	timeField(fieldRevokedAt, func(e *Entry) *time.Time { return &e.RevokedAt }),
	stringField(fieldExternalID, func(e *Entry) *string { return &e.ExternalID }),
	{num: fieldMetadata, typ: protowire.BytesType,
		append: func(b []byte, e *Entry) []byte {
			if len(e.Metadata) == 0 {
				return b
			}
			return protowire.AppendBytes(protowire.AppendTag(b, fieldMetadata, protowire.BytesType), e.Metadata)
		},
		bytes: func(e *Entry, v []byte, _ func([]byte) string) error {
			// Always a copy: a []byte can be written to, a string's memory
			// must not be.
			e.Metadata = append([]byte(nil), v...)
			return nil
		}},
	{num: fieldCIDR, typ: protowire.BytesType,
		append: func(b []byte, e *Entry) []byte {
			for _, p := range e.AllowedCIDRs {
				b = protowire.AppendString(protowire.AppendTag(b, fieldCIDR, protowire.BytesType), p.String())
			}
			return b
		},
		bytes: func(e *Entry, v []byte, str func([]byte) string) error {
			p, err := netip.ParsePrefix(str(v))
			if err != nil {
				return fmt.Errorf("%w: allowed cidr: %v", ErrBadEncoding, err)
			}
			e.AllowedCIDRs = append(e.AllowedCIDRs, p)
			return nil
		}},
	stringField(fieldUsagePool, func(e *Entry) *string { return &e.UsagePool }),
	intField(fieldRemainingUses, func(e *Entry) *int64 { return &e.RemainingUses }),
	intField(fieldRateLimit, func(e *Entry) *int64 { return &e.RateLimit }),
	{num: fieldRatePeriod, typ: protowire.VarintType,
		append: func(b []byte, e *Entry) []byte {
			return appendInt(b, fieldRatePeriod, e.RatePeriod.Microseconds())
		},
		varint: func(e *Entry, v uint64) { e.RatePeriod = time.Duration(protowire.DecodeZigZag(v)) * time.Microsecond }},
	timeField(fieldCreatedAt, func(e *Entry) *time.Time { return &e.CreatedAt }),
	stringField(fieldOwnerKind, func(e *Entry) *string { return &e.OwnerKind }),
	stringField(fieldRevokeReason, func(e *Entry) *string { return &e.RevokeReason }),
}

// stringField is a string field, left out when empty.
func stringField(num protowire.Number, field func(*Entry) *string) entryField {
	return entryField{num: num, typ: protowire.BytesType,
		append: func(b []byte, e *Entry) []byte {
			if v := *field(e); v != "" {
				b = protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
			}
			return b
		},
		bytes: func(e *Entry, v []byte, str func([]byte) string) error {
			*field(e) = str(v)
			return nil
		}}
}

// intField is a zigzag int64 field, left out when zero.
func intField(num protowire.Number, field func(*Entry) *int64) entryField {
	return entryField{num: num, typ: protowire.VarintType,
		append: func(b []byte, e *Entry) []byte { return appendInt(b, num, *field(e)) },
		varint: func(e *Entry, v uint64) { *field(e) = protowire.DecodeZigZag(v) }}
}

// timeField is a time as zigzag unix microseconds (UTC when read), left out
// when zero.
func timeField(num protowire.Number, field func(*Entry) *time.Time) entryField {
	return entryField{num: num, typ: protowire.VarintType,
		append: func(b []byte, e *Entry) []byte {
			if t := *field(e); !t.IsZero() {
				b = appendInt(b, num, t.UnixMicro())
			}
			return b
		},
		varint: func(e *Entry, v uint64) { *field(e) = time.UnixMicro(protowire.DecodeZigZag(v)).UTC() }}
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), protowire.EncodeZigZag(v))
}

// MarshalBinary encodes e in the versioned Redis value format.
func (e *Entry) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+len(e.TokenID)+len(e.UserID)+len(e.OrgID)+16*len(e.Scopes)+len(e.ExternalID)+
		len(e.Metadata)+len(e.UsagePool)+24*len(e.AllowedCIDRs)+len(e.OwnerKind)+len(e.RevokeReason))
	b = append(b, encodingV1)
	for i := range entryFields {
		b = entryFields[i].append(b, e)
	}
	return b, nil
}

// UnmarshalBinary decodes a value written by MarshalBinary, of this or a
// later keymint (whose unknown fields it skips). e keeps nothing of b.
func (e *Entry) UnmarshalBinary(b []byte) error {
	return e.decode(b, copiedString)
}

// UnmarshalString is UnmarshalBinary of a value read as a string (a Redis
// reply): e's text fields share s's memory instead of copying it, which s
// being immutable makes safe, and s is not copied to bytes first. The
// view of s below is only ever read.
func (e *Entry) UnmarshalString(s string) error {
	return e.decode(unsafe.Slice(unsafe.StringData(s), len(s)), sharedString)
}

func (e *Entry) decode(b []byte, str func([]byte) string) error {
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
		f := fieldOf(num, typ)
		var err error
		switch {
		case f != nil && typ == protowire.BytesType:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 {
				err = f.bytes(e, v, str)
			}
		case f != nil:
			var v uint64
			if v, n = protowire.ConsumeVarint(b); n >= 0 {
				f.varint(e, v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrBadEncoding, protowire.ParseError(n))
		}
		if err != nil {
			return err
		}
		haveKey = haveKey || num == fieldKey && typ == protowire.BytesType
		b = b[n:]
	}
	if !haveKey {
		return fmt.Errorf("%w: no key", ErrBadEncoding)
	}
	return nil
}

// fieldOf returns the v1 field num is when its wire type is typ, else nil
// (a later writer's field, or one of another type: skipped).
func fieldOf(num protowire.Number, typ protowire.Type) *entryField {
	if num < 1 || int(num) > len(entryFields) {
		return nil
	}
	f := &entryFields[num-1]
	if f.typ != typ {
		return nil
	}
	return f
}
