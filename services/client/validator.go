package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrUnavailable means keymint could not be asked and the cache had no
// answer: the caller must refuse the request (fail closed).
var ErrUnavailable = errors.New("keymint unavailable")

// Reason says why a token was refused; it is keymint's own reason.
type Reason = keymintv1.ValidateTokenResponse_Reason

// Result is a validation's answer.
type Result struct {
	Valid    bool
	Reason   Reason
	Identity *Identity // set when Valid
}

// ValidatorConfig configures a Validator. Set Target or Conn.
type ValidatorConfig struct {
	// Target is keymint's gRPC address, dialled with DialOptions (plaintext
	// when none).
	Target      string
	DialOptions []grpc.DialOption
	// Conn is an existing connection to keymint, used instead of Target.
	Conn grpc.ClientConnInterface
	// CacheSize bounds the cache (entries). Default 100,000.
	CacheSize int
	// TTL bounds how long an answer is reused. Revocations arrive pushed
	// within a second; TTL bounds staleness only while the revocation stream
	// is down. Default 30s.
	TTL time.Duration
	// NegativeTTL is how long a refusal is reused. Default 2s.
	NegativeTTL time.Duration
	// Timeout bounds one call to keymint. Default 2s.
	Timeout time.Duration
	// Logger receives stream state changes; never a token. Default discards.
	Logger *slog.Logger
}

type cacheKey [sha256.Size]byte

// entry is a cached answer. Valid entries hold the token's scopes so a
// required scope is checked on every hit: an answer for one scope never
// authorizes another.
type entry struct {
	valid    bool
	reason   Reason
	identity *Identity
	until    time.Time // reuse ends here: TTL, capped at the token's expiry
}

// Validator validates tokens with an in-process cache in front of keymint,
// and drops revoked tokens as keymint pushes them. Unknown tokens always go
// to keymint; when keymint cannot answer they are refused.
type Validator struct {
	api    keymintv1.TokenServiceClient
	closer func() error
	cfg    ValidatorConfig
	log    *slog.Logger

	cache *otter.Cache[cacheKey, *entry]
	// byToken maps token id → cache key, so a revocation (which names ids,
	// never secrets) finds the entry.
	mu      sync.Mutex
	byToken map[string]cacheKey
	// gen changes on every revocation and cache clear; a lookup that started
	// before one does not store its answer, so it cannot resurrect a revoked
	// token.
	gen    atomic.Uint64
	flight singleflight.Group

	subscribed atomic.Bool
	cancel     context.CancelFunc
	done       chan struct{}
}

// NewValidator connects to keymint and starts following its revocation
// stream in the background until Close.
func NewValidator(ctx context.Context, cfg ValidatorConfig) (*Validator, error) {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	v := &Validator{cfg: cfg, log: cfg.Logger, byToken: map[string]cacheKey{}, closer: func() error { return nil }}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Conn != nil:
		v.api = keymintv1.NewTokenServiceClient(cfg.Conn)
	case cfg.Target != "":
		c, err := Dial(cfg.Target, cfg.DialOptions...)
		if err != nil {
			return nil, err
		}
		v.api, v.closer = c.TokenServiceClient, c.Close
	default:
		return nil, errors.New("keymint validator: set Target or Conn")
	}
	cache, err := otter.New(&otter.Options[cacheKey, *entry]{
		MaximumSize: cfg.CacheSize,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[cacheKey, *entry]) time.Duration {
			return time.Until(e.Value.until)
		}),
		OnDeletion: func(e otter.DeletionEvent[cacheKey, *entry]) {
			if e.Value.identity != nil {
				v.mu.Lock()
				if k, ok := v.byToken[e.Value.identity.TokenID]; ok && k == e.Key {
					delete(v.byToken, e.Value.identity.TokenID)
				}
				v.mu.Unlock()
			}
		},
	})
	if err != nil {
		_ = v.closer()
		return nil, fmt.Errorf("keymint validator cache: %w", err)
	}
	v.cache = cache
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v.cancel, v.done = cancel, make(chan struct{})
	go v.watch(wctx)
	return v, nil
}

// Close stops following revocations and closes a connection NewValidator
// dialled.
func (v *Validator) Close() error {
	v.cancel()
	<-v.done
	return v.closer()
}

// Subscribed reports whether the revocation stream is live.
func (v *Validator) Subscribed() bool { return v.subscribed.Load() }

// Validate checks token for the required scopes: from the cache when it can,
// else by asking keymint. An error (ErrUnavailable) means no answer: refuse.
func (v *Validator) Validate(ctx context.Context, token string, scopes ...string) (Result, error) {
	if token == "" {
		return Result{Reason: keymintv1.ValidateTokenResponse_MALFORMED}, nil
	}
	key := cacheKey(sha256Sum(token))
	now := time.Now()
	e, ok := v.cache.GetIfPresent(key)
	if !ok || !now.Before(e.until) {
		var err error
		if e, err = v.load(ctx, key, token); err != nil {
			return Result{}, err
		}
	}
	return e.answer(now, scopes), nil
}

func (e *entry) answer(now time.Time, scopes []string) Result {
	switch {
	case !e.valid:
		return Result{Reason: e.reason}
	case !e.identity.ExpiresAt.IsZero() && !now.Before(e.identity.ExpiresAt):
		return Result{Reason: keymintv1.ValidateTokenResponse_EXPIRED}
	case !e.identity.HasScopes(scopes...):
		return Result{Reason: keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE}
	}
	return Result{Valid: true, Identity: e.identity}
}

// load asks keymint once for all concurrent callers of one token. The call
// runs on a context detached from any one caller, so a caller giving up does
// not fail the others.
func (v *Validator) load(ctx context.Context, key cacheKey, token string) (*entry, error) {
	ch := v.flight.DoChan(string(key[:]), func() (any, error) {
		gen := v.gen.Load()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.Timeout)
		defer cancel()
		// Scopes are checked here, on the cached answer, not by keymint.
		resp, err := v.api.ValidateToken(cctx, &keymintv1.ValidateTokenRequest{Token: token})
		if err != nil {
			return nil, err
		}
		e := v.entryFrom(resp)
		if v.gen.Load() == gen {
			v.store(key, e)
		}
		return e, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, r.Err)
		}
		return r.Val.(*entry), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

func (v *Validator) entryFrom(resp *keymintv1.ValidateTokenResponse) *entry {
	now := time.Now()
	if !resp.GetValid() {
		return &entry{reason: resp.GetReason(), until: now.Add(v.cfg.NegativeTTL)}
	}
	id := &Identity{
		TokenID:        resp.GetTokenId(),
		UserID:         resp.GetUserId(),
		OrganizationID: resp.GetOrganizationId(),
		Scopes:         sortedCopy(resp.GetScopes()),
	}
	until := now.Add(v.cfg.TTL)
	if resp.GetExpireTime() != nil {
		id.ExpiresAt = resp.GetExpireTime().AsTime()
		if id.ExpiresAt.Before(until) {
			until = id.ExpiresAt
		}
	}
	return &entry{valid: true, identity: id, until: until}
}

func (v *Validator) store(key cacheKey, e *entry) {
	if !time.Now().Before(e.until) {
		return
	}
	if e.identity != nil {
		v.mu.Lock()
		v.byToken[e.identity.TokenID] = key
		v.mu.Unlock()
	}
	v.cache.Set(key, e)
}

// drop forgets a revoked token.
func (v *Validator) drop(tokenID string) {
	v.gen.Add(1)
	v.mu.Lock()
	key, ok := v.byToken[tokenID]
	delete(v.byToken, tokenID)
	v.mu.Unlock()
	if ok {
		v.cache.Invalidate(key)
	}
}

// clear forgets everything: revocations sent while the stream was down are lost.
func (v *Validator) clear() {
	v.gen.Add(1)
	v.cache.InvalidateAll()
}

// ValidateToken answers in keymint's own message shape, so a Validator can
// stand in for keymint's TokenService (the sidecar's ext_authz and
// forward-auth adapters take either).
func (v *Validator) ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	r, err := v.Validate(ctx, req.GetToken(), req.GetRequiredScopes()...)
	if err != nil {
		return nil, err
	}
	if !r.Valid {
		return &keymintv1.ValidateTokenResponse{Reason: r.Reason}, nil
	}
	resp := &keymintv1.ValidateTokenResponse{
		Valid:          true,
		TokenId:        r.Identity.TokenID,
		UserId:         r.Identity.UserID,
		OrganizationId: r.Identity.OrganizationID,
		Scopes:         r.Identity.Scopes,
	}
	if !r.Identity.ExpiresAt.IsZero() {
		resp.ExpireTime = timestamppb.New(r.Identity.ExpiresAt)
	}
	return resp, nil
}

// sha256Sum keys the cache: the token itself is never kept.
func sha256Sum(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }
