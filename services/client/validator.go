package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
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
	// RetryAfter is set when Reason is RATE_LIMITED.
	RetryAfter time.Duration
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
	// HeartbeatTimeout is how long the revocation stream may stay silent
	// (keymint sends a heartbeat every 500ms by default) before the
	// validator stops answering from its cache and reconnects at once, on
	// a fresh connection when it dialled Target itself (so a Service
	// address reaches another replica). Default 1.5s.
	HeartbeatTimeout time.Duration
	// WatchToken is a token with the keymint:watch scope, sent with
	// WatchRevocations only, for a keymint run with --watch-require-scope.
	WatchToken string
	// RevokedSize bounds how many revoked token ids are remembered (an id
	// once seen revoked is never answered valid again, whatever a replica
	// says); RevokedTTL is how long each is. Defaults 100,000 ids (about
	// 10 MiB) and 10 minutes: longer than any replica's caches keep a stale
	// copy (L1 5s, Redis 5m).
	RevokedSize int
	RevokedTTL  time.Duration
	// executor runs the cache's deletion callbacks (tests make it
	// synchronous to close the race they look at); nil is otter's default,
	// a goroutine per callback.
	executor func(func())
	// pause waits d before a resubscribe, false when ctx ends first (tests
	// record the pauses instead); nil is sleep.
	pause func(ctx context.Context, d time.Duration) bool
	// Logger receives stream state changes; never a token. Default discards.
	Logger *slog.Logger
	// ClientIP tells Middleware the address a request came from, checked
	// against a token's allowed CIDRs. Default: the connection's address
	// (behind a proxy, pass one that reads its forwarded header).
	ClientIP func(*http.Request) netip.Addr
}

type cacheKey [sha256.Size]byte

// entry is a cached answer. Valid entries hold the token's scopes and
// allowed CIDRs, so a required scope and the client address are checked on
// every hit: an answer for one scope or address never authorizes another.
type entry struct {
	valid      bool
	reason     Reason
	identity   *Identity
	retryAfter time.Duration
	until      time.Time // reuse ends here: TTL, capped at the token's expiry
	// noStore marks a token with a usage or rate limit: every use must
	// reach keymint, so a cached noStore entry only says "ask keymint,
	// without coalescing".
	noStore bool
}

// Validator validates tokens with an in-process cache in front of keymint,
// and drops revoked tokens as keymint pushes them. Unknown tokens always go
// to keymint; when keymint cannot answer they are refused. While the
// revocation stream is not live (never subscribed yet, or silent past
// HeartbeatTimeout) every call asks keymint first, and a cached answer is
// used only when keymint cannot be reached.
type Validator struct {
	api  atomic.Pointer[conn]
	cfg  ValidatorConfig
	log  *slog.Logger
	dial func() (*conn, error) // nil when the connection was given (Conn)

	cache *otter.Cache[cacheKey, *entry]
	// byToken maps token id → the cache key and entry stored for it, so a
	// revocation (which names ids, never secrets) finds the entry. The
	// entry is compared on deletion: replacing a key's entry must not
	// delete the mapping just written for the new one.
	mu      sync.Mutex
	byToken map[string]tokenRef
	// revoked holds ids seen revoked: never valid again (bounded, TTL).
	revoked *otter.Cache[string, struct{}]
	// gen changes on every revocation and cache clear; a lookup that started
	// before one does not store its answer, so it cannot resurrect a revoked
	// token.
	gen    atomic.Uint64
	flight singleflight.Group

	subscribed atomic.Bool
	cancel     context.CancelFunc
	done       chan struct{}
}

// conn is the connection the validator asks keymint on, and how to close it.
type conn struct {
	api   keymintv1.TokenServiceClient
	close func() error
}

// tokenRef is where a token id's answer is cached.
type tokenRef struct {
	key cacheKey
	e   *entry
}

func (v *Validator) client() keymintv1.TokenServiceClient { return v.api.Load().api }

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
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 1500 * time.Millisecond
	}
	if cfg.RevokedSize <= 0 {
		cfg.RevokedSize = 100_000
	}
	if cfg.RevokedTTL <= 0 {
		cfg.RevokedTTL = 10 * time.Minute
	}
	if cfg.pause == nil {
		cfg.pause = sleep
	}
	v := &Validator{cfg: cfg, log: cfg.Logger, byToken: map[string]tokenRef{}}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Conn != nil:
		v.api.Store(&conn{api: keymintv1.NewTokenServiceClient(cfg.Conn), close: func() error { return nil }})
	case cfg.Target != "":
		v.dial = func() (*conn, error) {
			c, err := Dial(cfg.Target, cfg.DialOptions...)
			if err != nil {
				return nil, err
			}
			return &conn{api: c.TokenServiceClient, close: c.Close}, nil
		}
		c, err := v.dial()
		if err != nil {
			return nil, err
		}
		v.api.Store(c)
	default:
		return nil, errors.New("keymint validator: set Target or Conn")
	}
	revoked, err := otter.New(&otter.Options[string, struct{}]{
		MaximumSize:      cfg.RevokedSize,
		ExpiryCalculator: otter.ExpiryWriting[string, struct{}](cfg.RevokedTTL),
	})
	if err != nil {
		_ = v.api.Load().close()
		return nil, fmt.Errorf("keymint validator cache: %w", err)
	}
	v.revoked = revoked
	cache, err := otter.New(&otter.Options[cacheKey, *entry]{
		MaximumSize: cfg.CacheSize,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[cacheKey, *entry]) time.Duration {
			return time.Until(e.Value.until)
		}),
		Executor: cfg.executor,
		OnDeletion: func(e otter.DeletionEvent[cacheKey, *entry]) {
			if e.Value.identity != nil {
				v.mu.Lock()
				// Only the mapping of this very entry: when a key's entry is
				// replaced, the mapping already names the new one.
				if r, ok := v.byToken[e.Value.identity.TokenID]; ok && r.e == e.Value {
					delete(v.byToken, e.Value.identity.TokenID)
				}
				v.mu.Unlock()
			}
		},
	})
	if err != nil {
		_ = v.api.Load().close()
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
	v.revoked.StopAllGoroutines()
	return v.api.Load().close()
}

// Subscribed reports whether the revocation stream is live: subscribed,
// and heard from within HeartbeatTimeout.
func (v *Validator) Subscribed() bool { return v.subscribed.Load() }

// Validate checks token for the required scopes: from the cache when it can,
// else by asking keymint. An error (ErrUnavailable) means no answer: refuse.
// A token with allowed CIDRs is refused (IP_NOT_ALLOWED): use ValidateFrom
// to pass the client's address.
func (v *Validator) Validate(ctx context.Context, token string, scopes ...string) (Result, error) {
	return v.ValidateFrom(ctx, token, netip.Addr{}, scopes...)
}

// ValidateFrom is Validate for a token presented from clientIP (the zero
// Addr when unknown), checked against the token's allowed CIDRs. Tokens with
// a usage or rate limit are never answered from the cache: every use is
// counted by keymint.
func (v *Validator) ValidateFrom(ctx context.Context, token string, clientIP netip.Addr, scopes ...string) (Result, error) {
	if token == "" {
		return Result{Reason: keymintv1.ValidateTokenResponse_MALFORMED}, nil
	}
	clientIP = clientIP.Unmap()
	key := cacheKey(sha256Sum(token))
	now := time.Now()
	e, ok := v.cache.GetIfPresent(key)
	cached := ok && now.Before(e.until)
	if cached && v.subscribed.Load() {
		if e.noStore {
			return v.direct(ctx, token, clientIP, scopes)
		}
		return e.answer(now, clientIP, scopes), nil
	}
	// A miss, or the revocation stream is not live: ask keymint; a cached
	// answer serves only while keymint cannot be reached (until its TTL).
	fresh, led, err := v.load(ctx, key, token, clientIP, scopes)
	if err != nil {
		if cached && !e.noStore {
			return e.answer(now, clientIP, scopes), nil
		}
		return Result{}, err
	}
	e = fresh
	if e.noStore && !led {
		// The shared answer counted one use, the leader's: ask for ours.
		return v.direct(ctx, token, clientIP, scopes)
	}
	return e.answer(now, clientIP, scopes), nil
}

func (e *entry) answer(now time.Time, clientIP netip.Addr, scopes []string) Result {
	switch {
	case !e.valid:
		return Result{Reason: e.reason, RetryAfter: e.retryAfter}
	case !e.identity.ExpiresAt.IsZero() && !now.Before(e.identity.ExpiresAt):
		return Result{Reason: keymintv1.ValidateTokenResponse_EXPIRED}
	case !e.identity.AllowsIP(clientIP):
		return Result{Reason: keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED}
	case !e.identity.HasScopes(scopes...):
		return Result{Reason: keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE}
	}
	return Result{Valid: true, Identity: e.identity}
}

// load asks keymint once for all concurrent callers of one token, address
// and scope set, and reports whether this caller's call was the one made
// (led). The call runs on a context detached from any one caller, so a
// caller giving up does not fail the others.
func (v *Validator) load(ctx context.Context, key cacheKey, token string, clientIP netip.Addr, scopes []string) (*entry, bool, error) {
	// The answer may depend on the address (IP_NOT_ALLOWED) and the scopes
	// (keymint checks them before counting a use), so only callers sharing
	// both share a call.
	fk := string(key[:]) + "\x00" + ipString(clientIP) + "\x00" + strings.Join(scopes, " ")
	led := false
	ch := v.flight.DoChan(fk, func() (any, error) {
		led = true
		gen := v.gen.Load()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.Timeout)
		defer cancel()
		resp, err := v.client().ValidateToken(cctx, &keymintv1.ValidateTokenRequest{
			Token: token, RequiredScopes: scopes, ClientIp: ipString(clientIP),
		})
		if err != nil {
			return nil, err
		}
		e, cacheable := v.entryFrom(resp)
		if cacheable && v.gen.Load() == gen {
			v.store(key, e)
		}
		return e, nil
	})
	select {
	case r := <-ch:
		// led was written before fn returned, which happened before the
		// result was sent.
		if r.Err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, r.Err)
		}
		return r.Val.(*entry), led, nil
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// direct asks keymint about this one use, uncoalesced and uncached: for a
// token with a usage or rate limit.
func (v *Validator) direct(ctx context.Context, token string, clientIP netip.Addr, scopes []string) (Result, error) {
	cctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	resp, err := v.client().ValidateToken(cctx, &keymintv1.ValidateTokenRequest{
		Token: token, RequiredScopes: scopes, ClientIp: ipString(clientIP),
	})
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	e, _ := v.entryFrom(resp)
	return e.answer(time.Now(), clientIP, scopes), nil
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// entryFrom turns keymint's answer into an entry, and says whether it may be
// cached: a refusal that depends on the scopes asked (INSUFFICIENT_SCOPE) or
// on the address (IP_NOT_ALLOWED) may not; an answer keymint marks no_store
// is cached only as a marker that sends later calls straight to keymint.
func (v *Validator) entryFrom(resp *keymintv1.ValidateTokenResponse) (*entry, bool) {
	now := time.Now()
	if !resp.GetValid() {
		e := &entry{reason: resp.GetReason(), until: now.Add(v.cfg.NegativeTTL), noStore: resp.GetNoStore(),
			retryAfter: resp.GetRetryAfter().AsDuration()}
		switch resp.GetReason() {
		case keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE, keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED:
			return e, false
		}
		if e.noStore {
			e.until = now.Add(v.cfg.TTL)
		}
		return e, true
	}
	id := &Identity{
		TokenID:        resp.GetTokenId(),
		UserID:         resp.GetUserId(),
		OrganizationID: resp.GetOrganizationId(),
		Scopes:         sortedCopy(resp.GetScopes()),
		ExternalID:     resp.GetExternalId(),
		Metadata:       resp.GetMetadata(),
		RemainingUses:  resp.RemainingUses,
		PrincipalKind:  resp.GetPrincipalKind(),
	}
	for _, c := range resp.GetAllowedCidrs() {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			// An allow-list this client cannot read must not turn into
			// "anywhere": keep a prefix that matches nothing.
			p = netip.Prefix{}
		}
		id.AllowedCIDRs = append(id.AllowedCIDRs, p)
	}
	if resp.GetCreateTime() != nil {
		id.CreatedAt = resp.GetCreateTime().AsTime()
	}
	if _, revoked := v.revoked.GetIfPresent(id.TokenID); revoked {
		// A replica that has not applied the revocation yet answered from
		// its cache: never a positive after a refusal.
		return &entry{reason: keymintv1.ValidateTokenResponse_REVOKED, until: now.Add(v.cfg.NegativeTTL)}, true
	}
	until := now.Add(v.cfg.TTL)
	if resp.GetExpireTime() != nil {
		id.ExpiresAt = resp.GetExpireTime().AsTime()
		if id.ExpiresAt.Before(until) {
			until = id.ExpiresAt
		}
	}
	return &entry{valid: true, identity: id, until: until, noStore: resp.GetNoStore()}, true
}

func (v *Validator) store(key cacheKey, e *entry) {
	if !time.Now().Before(e.until) {
		return
	}
	if e.identity != nil {
		v.mu.Lock()
		v.byToken[e.identity.TokenID] = tokenRef{key: key, e: e}
		v.mu.Unlock()
	}
	v.cache.Set(key, e)
}

// drop forgets a revoked (or rotated) token's cached answer; revoked also
// remembers the id, so that no later answer makes it valid again.
func (v *Validator) drop(tokenID string, revoked bool) {
	if revoked {
		v.revoked.Set(tokenID, struct{}{})
	}
	v.gen.Add(1)
	v.mu.Lock()
	r, ok := v.byToken[tokenID]
	delete(v.byToken, tokenID)
	v.mu.Unlock()
	if ok {
		v.cache.Invalidate(r.key)
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
	var ip netip.Addr
	if c := req.GetClientIp(); c != "" {
		var err error
		if ip, err = netip.ParseAddr(c); err != nil {
			return nil, status.Error(codes.InvalidArgument, "client_ip is not an IP address")
		}
	}
	r, err := v.ValidateFrom(ctx, req.GetToken(), ip, req.GetRequiredScopes()...)
	if err != nil {
		return nil, err
	}
	if !r.Valid {
		resp := &keymintv1.ValidateTokenResponse{Reason: r.Reason}
		if r.RetryAfter > 0 {
			resp.RetryAfter = durationpb.New(r.RetryAfter)
		}
		return resp, nil
	}
	resp := &keymintv1.ValidateTokenResponse{
		Valid:          true,
		TokenId:        r.Identity.TokenID,
		UserId:         r.Identity.UserID,
		OrganizationId: r.Identity.OrganizationID,
		Scopes:         r.Identity.Scopes,
		ExternalId:     r.Identity.ExternalID,
		Metadata:       r.Identity.Metadata,
		RemainingUses:  r.Identity.RemainingUses,
		PrincipalKind:  r.Identity.PrincipalKind,
	}
	for _, p := range r.Identity.AllowedCIDRs {
		resp.AllowedCidrs = append(resp.AllowedCidrs, p.String())
	}
	if !r.Identity.ExpiresAt.IsZero() {
		resp.ExpireTime = timestamppb.New(r.Identity.ExpiresAt)
	}
	if !r.Identity.CreatedAt.IsZero() {
		resp.CreateTime = timestamppb.New(r.Identity.CreatedAt)
	}
	return resp, nil
}

// sha256Sum keys the cache: the token itself is never kept.
func sha256Sum(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }
