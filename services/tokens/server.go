package tokens

import (
	"context"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is the gRPC transport of TokenService: thin methods that convert
// messages and call the Service.
type Server struct {
	keymintv1.UnimplementedTokenServiceServer
	svc *Service
}

// NewServer returns the gRPC TokenService over svc.
func NewServer(svc *Service) *Server { return &Server{svc: svc} }

// CreateToken mints a token and reveals its secret once.
func (s *Server) CreateToken(ctx context.Context, req *keymintv1.CreateTokenRequest) (*keymintv1.CreateTokenResponse, error) {
	mr := MintRequest{Name: req.GetName(), Description: req.GetDescription(), Scopes: req.GetScopes()}
	if req.ExpireTime != nil {
		if err := req.ExpireTime.CheckValid(); err != nil {
			return nil, fault.New(fault.InvalidArgument, "expire_time is not a valid timestamp")
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
	p, _ := accounts.PrincipalFrom(ctx)
	return &keymintv1.CreateTokenResponse{
		Token:  s.toProto(m.Token, map[string]string{m.Token.CreatedBy: p.Email}),
		Secret: m.Secret,
	}, nil
}

// ValidateToken answers whether a token is good for the required scopes.
func (s *Server) ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	r, err := s.svc.Validate(ctx, req.GetToken(), req.GetRequiredScopes())
	if err != nil {
		return nil, err
	}
	if !r.Valid {
		return &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_Reason(r.Reason)}, nil
	}
	return &keymintv1.ValidateTokenResponse{
		Valid:          true,
		TokenId:        r.Token.ID,
		UserId:         r.Token.UserID,
		OrganizationId: r.Token.OrgID,
		Scopes:         r.Token.Scopes,
		ExpireTime:     timestamp(r.Token.ExpiresAt),
	}, nil
}

// ListTokens lists the caller's tokens.
func (s *Server) ListTokens(ctx context.Context, req *keymintv1.ListTokensRequest) (*keymintv1.ListTokensResponse, error) {
	list, next, err := s.svc.List(ctx, ListRequest{
		PageSize:     int(req.GetPageSize()),
		PageToken:    req.GetPageToken(),
		AllUsers:     req.GetAllUsers(),
		ShowInactive: req.GetShowInactive(),
	})
	if err != nil {
		return nil, err
	}
	emails := s.svc.CreatorEmails(ctx, list)
	out := &keymintv1.ListTokensResponse{Tokens: make([]*keymintv1.Token, len(list)), NextPageToken: next}
	for i, t := range list {
		out.Tokens[i] = s.toProto(t, emails)
	}
	return out, nil
}

// GetToken returns one token's metadata.
func (s *Server) GetToken(ctx context.Context, req *keymintv1.GetTokenRequest) (*keymintv1.Token, error) {
	t, err := s.svc.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return s.toProto(t, s.svc.CreatorEmails(ctx, []store.Token{t})), nil
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
	return s.toProto(t, s.svc.CreatorEmails(ctx, []store.Token{t})), nil
}

func (s *Server) toProto(t store.Token, emails map[string]string) *keymintv1.Token {
	return &keymintv1.Token{
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
		Status:         keymintv1.TokenStatus(StatusAt(t, s.svc.now())),
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
