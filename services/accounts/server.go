package accounts

import (
	"context"
	"errors"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is the gRPC transport of AccountService: thin methods that convert
// messages and call the Service.
type Server struct {
	keymintv1.UnimplementedAccountServiceServer
	svc *Service
}

// NewServer returns the gRPC AccountService over svc.
func NewServer(svc *Service) *Server { return &Server{svc: svc} }

// Login starts a session and returns its secret, this once.
func (s *Server) Login(ctx context.Context, req *keymintv1.LoginRequest) (*keymintv1.LoginResponse, error) {
	if req.GetEmail() == "" || req.GetPassword() == "" {
		return nil, fault.New(fault.InvalidArgument, "email and password are required")
	}
	ns, err := s.svc.Login(ctx, req.GetEmail(), req.GetPassword())
	if err != nil {
		return nil, err
	}
	return &keymintv1.LoginResponse{
		SessionToken: ns.Secret,
		ExpireTime:   timestamppb.New(ns.ExpiresAt),
		UserId:       ns.Principal.UserID,
	}, nil
}

// Logout ends the caller's session.
func (s *Server) Logout(ctx context.Context, _ *keymintv1.LogoutRequest) (*keymintv1.LogoutResponse, error) {
	if err := s.svc.Logout(ctx); err != nil {
		return nil, err
	}
	return &keymintv1.LogoutResponse{}, nil
}

// ChangePassword sets the caller's password and ends their other sessions.
func (s *Server) ChangePassword(ctx context.Context, req *keymintv1.ChangePasswordRequest) (*keymintv1.ChangePasswordResponse, error) {
	n, err := s.svc.ChangePassword(ctx, req.GetCurrentPassword(), req.GetNewPassword())
	if err != nil {
		return nil, err
	}
	return &keymintv1.ChangePasswordResponse{EndedSessions: int32(n)}, nil
}

// GetCurrentUser returns the caller.
func (s *Server) GetCurrentUser(ctx context.Context, _ *keymintv1.GetCurrentUserRequest) (*keymintv1.User, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return nil, fault.New(fault.Unauthenticated, "credentials required: a session, x-api-email and x-api-password, or authorization")
	}
	out := &keymintv1.User{Id: p.UserID, Email: p.Email, OrganizationId: p.OrgID, Admin: p.Admin, Scopes: p.HeldScopes}
	org, err := s.svc.store.GetOrg(ctx, p.OrgID)
	switch {
	case err == nil:
		out.OrganizationName = org.Name
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, fault.StoreFailure(err, "get organization")
	}
	return out, nil
}
