package tokens

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keymint/keymint/services/batch"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Cache is what validation needs of the validation cache (*cache.Cache).
//
// Keying. An entry is cached under the digest the store holds for the token:
// its HMAC under the pepper it was minted with. Revoke has no secret, only
// the stored token, so this is the one key it can always name, and the
// invalidation reaches every level whatever pepper is primary. Validation
// knows the secret, not the pepper: it tries the digest under the primary
// pepper first (every token minted since the last rotation: one HMAC, one L1
// probe), then, on a miss, the digests under the older peppers too.
// A negative entry (unknown token) sits under the primary digest, the first
// probed; nothing ever needs to invalidate it.
type Cache interface {
	// Peek is the L1 probe: no I/O, no allocation.
	Peek(key cache.Key) *cache.Entry
	// Get looks every level up for keys, loading from the store on a miss.
	Get(ctx context.Context, keys []cache.Key, load cache.Loader) (*cache.Entry, error)
	// Invalidate drops key everywhere, on every replica.
	Invalidate(ctx context.Context, key cache.Key) error
}

// lookup finds the token of secret: L1 by its primary digest, else (if
// secret is well formed, or ErrMalformed) every level by all its digests,
// else the store. It also returns the primary digest, which matches needs.
func (s *Service) lookup(ctx context.Context, secret string) (*cache.Entry, cache.Key, error) {
	// The checksum first: a typo or garbage is refused for a CRC, not an
	// HMAC and a probe (Check below still runs in full before the store).
	if !s.format.checksumOK(secret) {
		return nil, cache.Key{}, ErrMalformed
	}
	primary := cache.Key(s.keys.PrimaryArray(secret))
	if s.cache != nil {
		if e := s.cache.Peek(primary); e != nil {
			return e, primary, nil
		}
	}
	if err := s.format.Check(secret); err != nil {
		return nil, primary, err
	}
	// The digests under every pepper, primary first: the primary's is the
	// one the L1 probe computed (an HMAC is ~5k instructions of a miss).
	keys := make([]cache.Key, s.keys.Len())
	digests := make([][]byte, len(keys))
	keys[0] = primary
	for i := range keys {
		if i > 0 {
			keys[i] = s.keys.digestArray(i, secret)
		}
		digests[i] = keys[i][:]
	}
	load := func(ctx context.Context) (*cache.Entry, error) {
		t, err := s.byDigestShared(ctx, digests)
		if errors.Is(err, store.ErrNotFound) {
			return &cache.Entry{Key: primary, Negative: true}, nil
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// ctx is the cache's own bounded context, detached from the
			// caller's: running out of it means a slow store, which the
			// caller should retry (Unavailable), not a deadline it set.
			return nil, fault.Wrap(fault.Unavailable, fmt.Errorf("look up token: %w", err), "store unavailable, retry shortly").Retry(fault.StoreRetryAfter)
		}
		if err != nil {
			return nil, fault.StoreFailure(err, "look up token")
		}
		if len(t.Digest) != cache.KeySize {
			return nil, fault.Wrap(fault.Internal, fmt.Errorf("token %s: digest is %d bytes", t.ID, len(t.Digest)), "internal error")
		}
		e, err := entryOf(t)
		if err != nil {
			return nil, fault.Wrap(fault.Internal, err, "internal error")
		}
		return e, nil
	}
	var e *cache.Entry
	var err error
	if s.cache == nil {
		e, err = load(ctx)
	} else {
		e, err = s.cache.Get(ctx, keys, load)
	}
	if err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) {
			return nil, primary, err
		}
		return nil, primary, fault.StoreFailure(err, "look up token")
	}
	return e, primary, nil
}

// Bounds of the shared store lookups (README configuration table).
const (
	// LookupBatchSize is the most lookups one store query carries.
	LookupBatchSize = 64
	// LookupBatchQueue is the most lookups waiting for a query; beyond it a
	// lookup queries on its own.
	LookupBatchQueue = 1024
	// LookupBatchesInFlight is the most shared queries at once; a second
	// starts only while a full batch waits.
	LookupBatchesInFlight = 4
)

// digestAnswer is one lookup's answer in a shared query.
type digestAnswer struct {
	t     store.Token
	found bool
}

// byDigestShared is GetTokenByDigest, the query shared with the lookups
// that arrive while another is in flight (see package batch): a store round
// trip per miss was the cost of validating from the store under load. A
// lookup only joins a query that has not started, so one that begins after
// a revocation committed reads it.
func (s *Service) byDigestShared(ctx context.Context, digests [][]byte) (store.Token, error) {
	a, err := s.byDigest.Do(ctx, digests)
	if errors.Is(err, batch.ErrFull) {
		return s.store.GetTokenByDigest(ctx, digests)
	}
	if err != nil {
		return store.Token{}, err
	}
	if !a.found {
		return store.Token{}, store.ErrNotFound
	}
	return a.t, nil
}

// lookupBatch answers lookups (each a secret's digests, one per pepper) in
// one store query: GetTokenByDigest for one, the bulk TokensByDigests for
// more.
func (s *Service) lookupBatch(ctx context.Context, qs [][][]byte) ([]digestAnswer, error) {
	out := make([]digestAnswer, len(qs))
	if len(qs) == 1 {
		t, err := s.store.GetTokenByDigest(ctx, qs[0])
		if errors.Is(err, store.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out[0] = digestAnswer{t: t, found: true}
		return out, nil
	}
	var all [][]byte
	for _, q := range qs {
		all = append(all, q...)
	}
	ts, err := s.store.TokensByDigests(ctx, all)
	if err != nil {
		return nil, err
	}
	byKey := make(map[cache.Key]int, len(ts))
	for i, t := range ts {
		if len(t.Digest) == cache.KeySize {
			byKey[cache.Key(t.Digest)] = i
		}
	}
	for i, q := range qs {
		for _, d := range q {
			if len(d) != cache.KeySize {
				continue
			}
			if j, ok := byKey[cache.Key(d)]; ok {
				out[i] = digestAnswer{t: ts[j], found: true}
				break
			}
		}
	}
	return out, nil
}

// matches reports, in constant time, whether e is secret's token: its stored
// digest is the secret's under the pepper it names (primary is the secret's
// digest under the primary pepper). A cache hit found it by that digest
// already; this also refuses a digest that matched under some pepper but not
// the one recorded, and guards values read back from Redis.
func (s *Service) matches(e *cache.Entry, primary cache.Key, secret string) bool {
	if e.PepperID == s.keys.PrimaryID() {
		return hmac.Equal(primary[:], e.Key[:])
	}
	return s.keys.Matches(e.PepperID, e.Key[:], secret)
}

// entryOf is the cache entry of a stored token. The allowed CIDRs are
// parsed and the metadata encoded here, once per load, not per validation.
func entryOf(t store.Token) (*cache.Entry, error) {
	e := &cache.Entry{
		TokenID:       t.ID,
		UserID:        t.UserID,
		OrgID:         t.OrgID,
		PepperID:      t.PepperID,
		Scopes:        t.Scopes,
		ExpiresAt:     t.ExpiresAt,
		RevokedAt:     t.RevokedAt,
		ExternalID:    t.ExternalID,
		UsagePool:     t.UsagePool,
		RemainingUses: t.RemainingUses,
		RateLimit:     t.RateLimit,
		RatePeriod:    t.RatePeriod,
		CreatedAt:     t.CreatedAt,
		OwnerKind:     t.OwnerKind,
		RevokeReason:  t.RevokeReason,
	}
	copy(e.Key[:], t.Digest)
	var err error
	if e.AllowedCIDRs, err = ParseCIDRs(t.AllowedCIDRs); err != nil {
		// Never "anywhere" for a list that cannot be read.
		return nil, fmt.Errorf("token %s: allowed cidrs: %w", t.ID, err)
	}
	if len(t.Metadata) > 0 {
		m := &structpb.Struct{}
		if err := protojson.Unmarshal(t.Metadata, m); err != nil {
			return nil, fmt.Errorf("token %s: metadata: %w", t.ID, err)
		}
		opts := proto.MarshalOptions{Deterministic: true}
		if e.Metadata, err = opts.Marshal(m); err != nil {
			return nil, fmt.Errorf("token %s: metadata: %w", t.ID, err)
		}
	}
	return e, nil
}

// tokenOf is the part of a stored token an entry holds: what validation
// answers with.
func tokenOf(e *cache.Entry) store.Token {
	return store.Token{
		ID:        e.TokenID,
		OrgID:     e.OrgID,
		UserID:    e.UserID,
		Digest:    e.Key[:],
		PepperID:  e.PepperID,
		Scopes:    e.Scopes,
		ExpiresAt: e.ExpiresAt,
		RevokedAt: e.RevokedAt,
		CreatedAt: e.CreatedAt,
		OwnerKind: e.OwnerKind,
	}
}

// revoked runs after the store committed a revocation (notAfter zero) or a
// rotation (notAfter the grace end) of t. This replica stops accepting the
// token before the call returns: the revocation log row is applied here
// (L1 dropped, the id remembered, then this replica's streams told). The
// Redis side (the shared entry's deletion and tombstone, the publish to
// the other replicas) is queued: a hung Redis never holds the call, and
// the other replicas read the store's log within their poll anyway. A
// no-op revocation (RevocationSeq 0) still drops the caches.
func (s *Service) revoked(ctx context.Context, t store.Token, notAfter time.Time) {
	if s.revs == nil {
		s.invalidate(ctx, t)
		return
	}
	if len(t.Digest) != cache.KeySize {
		return
	}
	v := Revocation{Seq: t.RevocationSeq, TokenID: t.ID, At: t.RevokedAt, Rotated: !notAfter.IsZero(), NotAfter: notAfter}
	if v.Rotated {
		v.At = s.now().UTC()
	}
	copy(v.Key[:], t.Digest)
	if t.RevocationSeq == 0 {
		s.revs.Uncommitted(v)
		return
	}
	s.revs.Committed(ctx, v)
}

// invalidate drops a revoked token from the cache everywhere. The store has
// committed the revocation already; a failure here is logged, not returned:
// the revocation stands, and stale copies age out within the cache's TTLs.
func (s *Service) invalidate(ctx context.Context, t store.Token) {
	if s.cache == nil || len(t.Digest) != cache.KeySize {
		return
	}
	var k cache.Key
	copy(k[:], t.Digest)
	if err := s.cache.Invalidate(ctx, k); err != nil {
		s.log.WarnContext(ctx, "cache invalidation failed; retrying in the background", "token_id", t.ID, "err", err.Error())
	}
}
