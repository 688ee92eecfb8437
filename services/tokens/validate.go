package tokens

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/throttle"
)

// Reason says why a token was refused.
type Reason int

// Reasons a validation fails.
const (
	ReasonNone Reason = iota
	ReasonMalformed
	ReasonNotFound
	ReasonExpired
	ReasonRevoked
	ReasonInsufficientScope
	ReasonRateLimited
	ReasonUsageExhausted
	ReasonIPNotAllowed
	// ReasonOwnerDisabled: revoked because its owner was disabled.
	ReasonOwnerDisabled

	// numReasons counts the reasons: every one needs a row in
	// reasonToProto (enums.go). Add new reasons above it.
	numReasons
)

// Result is a validation's answer. Token is set when the token exists, with
// the fields validation answers from: id, owner, org, scopes, expiry,
// revocation, digest and pepper id (the others are zero: the cache does not
// hold them).
type Result struct {
	Valid  bool
	Reason Reason
	Token  store.Token
	// Entry is the record the answer came from (external id, metadata,
	// allowed CIDRs, limits); nil for an unknown or malformed token.
	Entry *cache.Entry
	// Remaining is the uses left after this one, for a valid token with a
	// usage limit (Entry.UsagePool set).
	Remaining int64
	// RetryAfter is when a rate-limited token may be used again.
	RetryAfter time.Duration
}

// NoStore reports whether a caching validator must not reuse r: every use
// of a token with a usage or rate limit must reach keymint, and a refusal
// for the client's address says nothing about another address.
func (r *Result) NoStore() bool {
	switch r.Reason {
	case ReasonIPNotAllowed, ReasonRateLimited:
		return true
	}
	return r.Valid && r.Entry != nil && (r.Entry.UsagePool != "" || r.Entry.RateLimit > 0)
}

// MaxRequiredScopes bounds the required scopes of one validation: no token
// holds more scopes than this (authn.MaxScopes), so a longer list could
// only be refused, after costing the server its length in work.
const MaxRequiredScopes = 64

var errTooManyRequired = fault.Newf(fault.InvalidArgument, "at most %d required scopes per validation", MaxRequiredScopes)

// Validate is ValidateFrom with no client address: a token with allowed
// CIDRs is refused.
func (s *Service) Validate(ctx context.Context, secret string, required []string) (Result, error) {
	return s.ValidateFrom(ctx, secret, required, netip.Addr{})
}

// ValidateFrom checks a token presented from clientIP and, when required is
// not empty, that it holds every required scope. A malformed token is
// refused before any lookup. An error means the answer is unknown (store
// unreachable and the token not cached, or a usage counter unreachable),
// never "valid". Expiry, revocation, allowed CIDRs and scopes are checked on
// cached data on every call; then a rate limit takes one event, and a usage
// limit one use, in that order, so a refused call costs neither (and a
// rate-limited one no use).
func (s *Service) ValidateFrom(ctx context.Context, secret string, required []string, clientIP netip.Addr) (Result, error) {
	var r Result
	err := s.validateInto(ctx, &r, secret, required, clientIP)
	return r, err
}

// validateInto is ValidateFrom answering in *r (zero on entry): the gRPC
// server's ValidateToken, on every validation, fills its own Result in
// place rather than have it built and copied twice on the way back.
func (s *Service) validateInto(ctx context.Context, r *Result, secret string, required []string, clientIP netip.Addr) error {
	if len(required) > MaxRequiredScopes {
		return errTooManyRequired
	}
	// The length is checked first, so that nothing longer is ever hashed;
	// lookup checks the checksum before hashing, and the alphabet only when
	// L1 has no entry: an entry exists only for a secret that passed it.
	if len(secret) != s.format.Len() {
		r.Reason = ReasonMalformed
		return nil
	}
	e, primary, err := s.lookup(ctx, secret)
	if errors.Is(err, ErrMalformed) {
		r.Reason = ReasonMalformed
		return nil
	}
	if err != nil {
		return err
	}
	if e.Negative || !s.matches(e, primary, secret) {
		r.Reason = ReasonNotFound
		return nil
	}
	r.Token, r.Entry = tokenOf(e), e
	now := s.now()
	switch StatusAt(r.Token, now) {
	case StatusRevoked:
		r.Reason = ReasonRevoked
		if e.RevokeReason == store.RevokeReasonOwnerDisabled {
			r.Reason = ReasonOwnerDisabled
		}
		return nil
	case StatusExpired:
		r.Reason = ReasonExpired
		return nil
	}
	if len(e.AllowedCIDRs) > 0 && !allowsIP(e.AllowedCIDRs, clientIP) {
		r.Reason = ReasonIPNotAllowed
		return nil
	}
	if !hasScopes(r.Token.Scopes, required) {
		r.Reason = ReasonInsufficientScope
		return nil
	}
	r.Valid = true
	if e.RateLimit > 0 || e.UsagePool != "" {
		if err := s.takeLimits(ctx, e, r); err != nil || !r.Valid {
			return err
		}
	}
	if s.usage != nil {
		s.usage.Record(r.Token.ID, now)
	}
	return nil
}

// allowsIP reports whether ip is inside one of cidrs; an unknown address
// is inside none.
func allowsIP(cidrs []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range cidrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// takeLimits takes one event of e's rate limit, then one use of its usage
// limit, and turns r into the refusal of the first that is spent. These
// cannot be answered from the cache: the rate limit lives in Redis (or the
// process), the counter in Redis or the store (services/quota).
func (s *Service) takeLimits(ctx context.Context, e *cache.Entry, r *Result) error {
	if e.RateLimit > 0 {
		lim := throttle.Limit{Burst: int(e.RateLimit), Interval: e.RatePeriod / time.Duration(e.RateLimit)}
		ok, retry, err := s.rates.Take(ctx, "t:"+e.TokenID, lim)
		if err != nil {
			r.Valid = false
			return err
		}
		if !ok {
			r.Valid, r.Reason, r.RetryAfter = false, ReasonRateLimited, max(retry, time.Millisecond)
			return nil
		}
	}
	if e.UsagePool != "" {
		ok, left, err := s.uses.Take(ctx, e.UsagePool, e.RemainingUses)
		if err != nil {
			r.Valid = false
			if ctx.Err() != nil {
				// The caller gave up (or its deadline passed): its own error.
				return err
			}
			// A store or Redis call that ran out of its own timeout is a
			// slow dependency, for the caller to retry.
			return fault.Wrap(fault.Unavailable, err, "usage counter unavailable, retry shortly").Retry(time.Second)
		}
		if !ok {
			r.Valid, r.Reason = false, ReasonUsageExhausted
			return nil
		}
		r.Remaining = left
	}
	return nil
}

// hasScopes reports whether have (sorted, unique) holds every scope in want:
// a binary search per wanted scope, so at most MaxRequiredScopes × log2 of
// a token's scopes (itself at most 64) comparisons, whatever the caller sends.
func hasScopes(have, want []string) bool {
	for _, w := range want {
		if _, ok := slices.BinarySearch(have, w); !ok {
			return false
		}
	}
	return true
}

// errInvalidToken is the one answer to any unusable token used as a
// credential; the reason is not told to the caller.
var errInvalidToken = fault.New(fault.Unauthenticated, "invalid token")

// AuthenticateToken resolves a token used as a credential to its principal.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (authn.Principal, error) {
	// A token used as a credential is checked like any use: its allowed
	// CIDRs against the caller's address, its rate and usage limits.
	r, err := s.ValidateFrom(ctx, secret, nil, s.clients.FromGRPC(ctx).IP)
	if err != nil {
		return authn.Principal{}, err
	}
	if !r.Valid {
		return authn.Principal{}, errInvalidToken
	}
	u, err := s.store.GetUser(ctx, r.Token.UserID)
	if err == nil && (!u.DisabledAt.IsZero() || !u.DeletedAt.IsZero()) {
		// Its tokens are revoked with it; this one was cached a moment ago.
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return authn.Principal{}, errInvalidToken
	}
	if err != nil {
		return authn.Principal{}, fault.StoreFailure(err, "get token owner")
	}
	kind := authn.Kind(u.Kind)
	if kind == "" {
		kind = authn.KindUser
	}
	return authn.Principal{
		Kind:       kind,
		UserID:     u.ID,
		OrgID:      u.OrgID,
		Email:      u.Email,
		Admin:      u.Admin && hasScopes(r.Token.Scopes, []string{AdminScope}),
		HeldScopes: u.Scopes,
		Method:     authn.ByToken,
		TokenID:    r.Token.ID,
		Scopes:     r.Token.Scopes,
	}, nil
}
