package tokens

import (
	"context"
	"hash/maphash"
	"net/netip"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/recent"
	"github.com/keymint/keymint/services/store"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is the gRPC transport of TokenService: thin methods that convert
// messages and call the Service.
type Server struct {
	keymintv1.UnimplementedTokenServiceServer
	svc *Service
	// answers holds recent valid answers by token id (recent.Size at
	// most, README "Shared reads": a few hundred bytes each without
	// metadata, so some 0.5 MB for tokens without it): an answer is built
	// once per cache entry and answered again while validations find that
	// entry (sharedAnswer).
	answers recent.Table[validAnswer]
}

// NewServer returns the gRPC TokenService over svc.
func NewServer(svc *Service) *Server { return &Server{svc: svc} }

// CreateToken mints a token and reveals its secret once.
func (s *Server) CreateToken(ctx context.Context, req *keymintv1.CreateTokenRequest) (*keymintv1.CreateTokenResponse, error) {
	mr := MintRequest{Name: req.GetName(), Description: req.GetDescription(), Scopes: req.GetScopes(),
		ServiceAccountID: req.GetServiceAccountId()}
	var err error
	if mr.Options, err = optionsOf(req); err != nil {
		return nil, err
	}
	if req.ExpireTime != nil {
		if err := req.ExpireTime.CheckValid(); err != nil {
			return nil, fault.New(fault.InvalidArgument, "expireTime is not a valid timestamp")
		}
		mr.ExpiresAt = req.ExpireTime.AsTime()
	}
	if req.Ttl != nil {
		if err := req.Ttl.CheckValid(); err != nil {
			return nil, fault.New(fault.InvalidArgument, "ttl is not a valid duration")
		}
		mr.TTL = req.Ttl.AsDuration()
	}
	m, err := s.svc.Mint(ctx, mr)
	if err != nil {
		return nil, err
	}
	p, _ := authn.PrincipalFrom(ctx)
	return &keymintv1.CreateTokenResponse{
		Token:  s.toProto(m.Token, map[string]string{m.Token.CreatedBy: p.Email}, s.svc.UsesLeft(ctx, []store.Token{m.Token})),
		Secret: m.Secret,
	}, nil
}

// optionsOf reads a CreateTokenRequest's optional parts.
func optionsOf(req *keymintv1.CreateTokenRequest) (Options, error) {
	l := Options{
		ExternalID:    req.GetExternalId(),
		Metadata:      req.GetMetadata(),
		AllowedCIDRs:  req.GetAllowedCidrs(),
		RemainingUses: req.RemainingUses,
	}
	if rl := req.GetRateLimit(); rl != nil {
		if err := rl.GetPeriod().CheckValid(); err != nil {
			return l, fault.New(fault.InvalidArgument, "rateLimit.period must be a valid duration")
		}
		l.RateLimit, l.RatePeriod = rl.GetLimit(), rl.GetPeriod().AsDuration()
	}
	return l, nil
}

// RotateToken mints a token's successor and starts the old one's grace period.
func (s *Server) RotateToken(ctx context.Context, req *keymintv1.RotateTokenRequest) (*keymintv1.CreateTokenResponse, error) {
	var grace time.Duration
	if g := req.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			return nil, fault.New(fault.InvalidArgument, "gracePeriod is not a valid duration")
		}
		grace = g.AsDuration()
	}
	r, err := s.svc.Rotate(ctx, req.GetId(), grace)
	if err != nil {
		return nil, err
	}
	both := []store.Token{r.Token, r.Previous}
	emails, left := s.svc.CreatorEmails(ctx, both), s.svc.UsesLeft(ctx, both)
	return &keymintv1.CreateTokenResponse{
		Token:    s.toProto(r.Token, emails, left),
		Secret:   r.Secret,
		Previous: s.toProto(r.Previous, emails, left),
	}, nil
}

// ReportLeakedTokens revokes the valid ones among tokens found in public.
func (s *Server) ReportLeakedTokens(ctx context.Context, req *keymintv1.ReportLeakedTokensRequest) (*keymintv1.ReportLeakedTokensResponse, error) {
	n, err := s.svc.ReportLeaked(ctx, req.GetTokens())
	if err != nil {
		return nil, err
	}
	return &keymintv1.ReportLeakedTokensResponse{Received: int32(n)}, nil
}

// ValidateToken answers whether a token is good for the required scopes.
func (s *Server) ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	var ip netip.Addr
	if c := req.GetClientIp(); c != "" {
		var err error
		if ip, err = netip.ParseAddr(c); err != nil {
			return nil, errBadClientIP
		}
	}
	var r Result
	if err := s.svc.validateInto(ctx, &r, req.GetToken(), req.GetRequiredScopes(), ip); err != nil {
		return nil, err
	}
	if !r.Valid {
		if r.RetryAfter <= 0 {
			return refusals[r.Reason][boolIndex(r.NoStore())], nil
		}
		return &keymintv1.ValidateTokenResponse{Reason: reasonToProto[r.Reason], NoStore: r.NoStore(),
			RetryAfter: durationpb.New(r.RetryAfter)}, nil
	}
	if e := r.Entry; e != nil && e.UsagePool == "" {
		return s.sharedAnswer(&r), nil
	}
	return &s.answer(&r).resp, nil
}

// refusals are the answers to a refused validation without a retry time,
// by reason and no_store, built once and shared read-only: such an answer
// says nothing but its reason, and garbage or unknown tokens (a scan, a
// flood) are refused at whatever rate they come.
var refusals = func() (out [numReasons][2]*keymintv1.ValidateTokenResponse) {
	for reason := range out {
		for noStore := range out[reason] {
			out[reason][noStore] = &keymintv1.ValidateTokenResponse{Reason: reasonToProto[reason], NoStore: noStore == 1}
		}
	}
	return out
}()

// boolIndex is 1 for true, 0 for false.
func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sharedAnswer is r's answer, r valid and its entry's token without a
// usage limit: a function of the entry alone then (a usage-limited
// token's answer carries the uses left, different every call). Entries
// are read-only once cached, so while validations find the same entry
// its answer is the one built for it, answered again, shared read-only
// as a gRPC server and the gateway may (protobuf messages are safe to
// marshal concurrently); every check of the call has run by now. A new
// entry (a refresh, or every call when L1 is off) gets a new answer.
func (s *Server) sharedAnswer(r *Result) *keymintv1.ValidateTokenResponse {
	h := maphash.String(tokenIDSeed, r.Entry.TokenID)
	if a := s.answers.Get(h, func(a *validAnswer) bool { return a.entry == r.Entry }); a != nil {
		return &a.resp
	}
	a := s.answer(r)
	s.answers.Put(h, a, func(old *validAnswer) bool { return old.entry.TokenID == r.Entry.TokenID })
	return &a.resp
}

// answer builds r's answer, r valid.
func (s *Server) answer(r *Result) *validAnswer {
	a := &validAnswer{entry: r.Entry}
	resp := &a.resp
	*resp = keymintv1.ValidateTokenResponse{
		Valid:          true,
		TokenId:        r.Token.ID,
		UserId:         r.Token.UserID,
		OrganizationId: r.Token.OrgID,
		Scopes:         r.Token.Scopes,
		ExpireTime:     timestampIn(&a.expire, r.Token.ExpiresAt),
		CreateTime:     timestampIn(&a.create, r.Token.CreatedAt),
		NoStore:        r.NoStore(),
		PrincipalKind:  authn.Kind(r.Token.OwnerKind).Proto(),
	}
	if e := r.Entry; e != nil {
		resp.ExternalId = e.ExternalID
		if len(e.Metadata) > 0 {
			m := &structpb.Struct{}
			if proto.Unmarshal(e.Metadata, m) == nil {
				resp.Metadata = m
			}
		}
		if len(e.AllowedCIDRs) > 0 {
			resp.AllowedCidrs = make([]string, len(e.AllowedCIDRs))
			for i, p := range e.AllowedCIDRs {
				resp.AllowedCidrs[i] = p.String()
			}
		}
		if e.UsagePool != "" {
			// A copy: &r.Remaining would move all of r to the heap, on
			// every validation.
			remaining := r.Remaining
			resp.RemainingUses = &remaining
		}
	}
	return a
}

var errBadClientIP = fault.New(fault.InvalidArgument, "clientIp is not an IP address")

// ListTokens lists the caller's tokens.
func (s *Server) ListTokens(ctx context.Context, req *keymintv1.ListTokensRequest) (*keymintv1.ListTokensResponse, error) {
	lr := ListRequest{
		PageSize:         int(req.GetPageSize()),
		PageToken:        req.GetPageToken(),
		AllUsers:         req.GetAllUsers(),
		ShowInactive:     req.GetShowInactive(),
		Query:            req.GetQuery(),
		Scope:            req.GetScope(),
		UserID:           req.GetUserId(),
		OrderBy:          req.GetOrderBy(),
		ServiceAccountID: req.GetServiceAccountId(),
	}
	switch req.GetStatus() {
	case keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE:
		lr.Status = store.TokenStatusActive
	case keymintv1.TokenStatus_TOKEN_STATUS_EXPIRED:
		lr.Status = store.TokenStatusExpired
	case keymintv1.TokenStatus_TOKEN_STATUS_REVOKED:
		lr.Status = store.TokenStatusRevoked
	case keymintv1.TokenStatus_TOKEN_STATUS_UNSPECIFIED:
	default:
		return nil, fault.New(fault.InvalidArgument, "status is not a token status")
	}
	if d := req.GetExpiresWithin(); d != nil {
		if d.CheckValid() != nil {
			return nil, fault.New(fault.InvalidArgument, "expiresWithin is not a valid duration")
		}
		lr.ExpiresWithin = d.AsDuration()
	}
	list, next, err := s.svc.List(ctx, lr)
	if err != nil {
		return nil, err
	}
	emails, left := s.svc.CreatorEmails(ctx, list), s.svc.UsesLeft(ctx, list)
	out := &keymintv1.ListTokensResponse{Tokens: make([]*keymintv1.Token, len(list)), NextPageToken: next}
	for i, t := range list {
		out.Tokens[i] = s.toProto(t, emails, left)
	}
	return out, nil
}

// GetToken returns one token's metadata.
func (s *Server) GetToken(ctx context.Context, req *keymintv1.GetTokenRequest) (*keymintv1.Token, error) {
	t, err := s.svc.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return s.toProto(t, s.svc.CreatorEmails(ctx, []store.Token{t}), s.svc.UsesLeft(ctx, []store.Token{t})), nil
}

// GetTokenHistory returns a token's rotation chain and recent events.
func (s *Server) GetTokenHistory(ctx context.Context, req *keymintv1.GetTokenHistoryRequest) (*keymintv1.TokenHistory, error) {
	h, err := s.svc.History(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	emails, left := s.svc.CreatorEmails(ctx, h.Chain), s.svc.UsesLeft(ctx, h.Chain)
	out := &keymintv1.TokenHistory{RotationChain: make([]*keymintv1.Token, len(h.Chain)), Events: make([]*keymintv1.AuditEvent, len(h.Events))}
	for i, t := range h.Chain {
		out.RotationChain[i] = s.toProto(t, emails, left)
	}
	for i, e := range h.Events {
		out.Events[i] = audit.ToProto(e)
	}
	return out, nil
}

// RevokeToken revokes a token, named by its id or by its secret.
func (s *Server) RevokeToken(ctx context.Context, req *keymintv1.RevokeTokenRequest) (*keymintv1.Token, error) {
	var (
		t   store.Token
		err error
	)
	switch {
	case req.GetId() != "" && req.GetToken() != "":
		return nil, fault.New(fault.InvalidArgument, "set id or token, not both")
	case req.GetToken() != "":
		t, err = s.svc.RevokeBySecret(ctx, req.GetToken())
	default:
		t, err = s.svc.Revoke(ctx, req.GetId())
	}
	if err != nil {
		return nil, err
	}
	return s.toProto(t, s.svc.CreatorEmails(ctx, []store.Token{t}), s.svc.UsesLeft(ctx, []store.Token{t})), nil
}

// toProto is a token's API form; emails maps creators to emails and left
// usage pools to the uses they have left.
func (s *Server) toProto(t store.Token, emails map[string]string, left map[string]int64) *keymintv1.Token {
	out := &keymintv1.Token{
		Id:             t.ID,
		OrganizationId: t.OrgID,
		UserId:         t.UserID,
		Name:           t.Name,
		Description:    t.Description,
		Hint:           t.Hint,
		Scopes:         t.Scopes,
		CreateTime:     timestamp(t.CreatedAt),
		ExpireTime:     timestamp(t.ExpiresAt),
		LastUsedTime:   timestamp(t.LastUsedAt),
		RevokeTime:     timestamp(t.RevokedAt),
		CreatedBy:      t.CreatedBy,
		CreatedByEmail: emails[t.CreatedBy],
		Status:         statusToProto[StatusAt(t, s.svc.now())],
		ExternalId:     t.ExternalID,
		Metadata:       metadataProto(t.Metadata),
		AllowedCidrs:   t.AllowedCIDRs,
		RotatedToId:    t.RotatedToID,
		PrincipalKind:  authn.Kind(t.OwnerKind).Proto(),
	}
	if t.UsagePool != "" {
		if n, ok := left[t.UsagePool]; ok {
			out.RemainingUses = &n
		}
	}
	if t.RateLimit > 0 {
		out.RateLimit = &keymintv1.RateLimit{Limit: t.RateLimit, Period: durationpb.New(t.RatePeriod)}
	}
	return out
}

// metadataProto decodes stored metadata; nil for none (or, never expected,
// an undecodable value: metadata is data, not a reason to fail a call).
func metadataProto(b []byte) *structpb.Struct {
	if len(b) == 0 {
		return nil
	}
	m := &structpb.Struct{}
	if err := protojson.Unmarshal(b, m); err != nil {
		return nil
	}
	return m
}

// validAnswer is a valid token's answer with its timestamps, allocated as
// one (ValidateToken's answer took one allocation per timestamp more), and
// the cache entry it was built from.
type validAnswer struct {
	resp           keymintv1.ValidateTokenResponse
	create, expire timestamppb.Timestamp
	entry          *cache.Entry
}

// timestampIn writes t into ts and returns it; nil for the zero time.
func timestampIn(ts *timestamppb.Timestamp, t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	return ts
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestampIn(new(timestamppb.Timestamp), t)
}
