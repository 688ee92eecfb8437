package accounts

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// UserProto is a person as the admin API shows them.
func UserProto(u store.User, orgName string) *keymintv1.User {
	out := &keymintv1.User{Id: u.ID, Email: u.Email, OrganizationId: u.OrgID, OrganizationName: orgName,
		Admin: u.Admin, Scopes: u.Scopes, Disabled: !u.DisabledAt.IsZero(), CreateTime: timestamppb.New(u.CreatedAt)}
	if !u.DisabledAt.IsZero() {
		out.DisableTime = timestamppb.New(u.DisabledAt)
	}
	return out
}

// ServiceAccountProto is a service account as the admin API shows it.
func ServiceAccountProto(u store.User) *keymintv1.ServiceAccount {
	return &keymintv1.ServiceAccount{Id: u.ID, OrganizationId: u.OrgID, Name: u.Name, Description: u.Description,
		Scopes: u.Scopes, CreateTime: timestamppb.New(u.CreatedAt), CreatedBy: u.CreatedBy}
}

// OrgProto is an organization as the admin API shows it.
func OrgProto(o store.Org) *keymintv1.Organization {
	return &keymintv1.Organization{Id: o.ID, Name: o.Name, CreateTime: timestamppb.New(o.CreatedAt)}
}

// orgName is the name of org id for display; unknown is empty.
func (s *Server) orgName(ctx context.Context, id string) (string, error) {
	o, err := s.svc.store.GetOrg(ctx, id)
	switch {
	case err == nil:
		return o.Name, nil
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	}
	return "", fault.StoreFailure(err, "get organization")
}

func (s *Server) userProto(ctx context.Context, u store.User) (*keymintv1.User, error) {
	name, err := s.orgName(ctx, u.OrgID)
	if err != nil {
		return nil, err
	}
	return UserProto(u, name), nil
}

// ListUsers lists the organization's people.
func (s *Server) ListUsers(ctx context.Context, req *keymintv1.ListUsersRequest) (*keymintv1.ListUsersResponse, error) {
	list, next, err := s.svc.ListUsers(ctx, int(req.GetPageSize()), req.GetPageToken(), req.GetEmailPrefix())
	if err != nil {
		return nil, err
	}
	out := &keymintv1.ListUsersResponse{Users: make([]*keymintv1.User, len(list)), NextPageToken: next}
	if len(list) > 0 {
		name, err := s.orgName(ctx, list[0].OrgID)
		if err != nil {
			return nil, err
		}
		for i, u := range list {
			out.Users[i] = UserProto(u, name)
		}
	}
	return out, nil
}

// GetUser returns one person of the organization.
func (s *Server) GetUser(ctx context.Context, req *keymintv1.GetUserRequest) (*keymintv1.User, error) {
	u, err := s.svc.GetUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return s.userProto(ctx, u)
}

// DisableUser disables a person.
func (s *Server) DisableUser(ctx context.Context, req *keymintv1.DisableUserRequest) (*keymintv1.User, error) {
	rm, err := s.svc.DisableUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return s.userProto(ctx, rm.User)
}

// EnableUser enables a disabled person.
func (s *Server) EnableUser(ctx context.Context, req *keymintv1.EnableUserRequest) (*keymintv1.User, error) {
	u, err := s.svc.EnableUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return s.userProto(ctx, u)
}

// DeleteUser deletes a person.
func (s *Server) DeleteUser(ctx context.Context, req *keymintv1.DeleteUserRequest) (*keymintv1.DeleteUserResponse, error) {
	rm, err := s.svc.DeleteUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &keymintv1.DeleteUserResponse{RevokedTokens: int32(len(rm.Revoked)), EndedSessions: int32(rm.EndedSessions)}, nil
}

// ResetUserPassword sets a password or issues a reset code.
func (s *Server) ResetUserPassword(ctx context.Context, req *keymintv1.ResetUserPasswordRequest) (*keymintv1.ResetUserPasswordResponse, error) {
	r, err := s.svc.ResetUserPassword(ctx, req.GetUserId(), req.GetNewPassword())
	if err != nil {
		return nil, err
	}
	out := &keymintv1.ResetUserPasswordResponse{ResetCode: r.Code, EndedSessions: int32(r.EndedSessions)}
	if r.Code != "" {
		out.ExpireTime = timestamppb.New(r.ExpiresAt)
	}
	return out, nil
}

// CompletePasswordReset redeems a reset code.
func (s *Server) CompletePasswordReset(ctx context.Context, req *keymintv1.CompletePasswordResetRequest) (*keymintv1.CompletePasswordResetResponse, error) {
	if err := s.svc.CompletePasswordReset(ctx, req.GetEmail(), req.GetResetCode(), req.GetNewPassword()); err != nil {
		return nil, err
	}
	return &keymintv1.CompletePasswordResetResponse{}, nil
}

// SetUserAdmin promotes or demotes a person.
func (s *Server) SetUserAdmin(ctx context.Context, req *keymintv1.SetUserAdminRequest) (*keymintv1.User, error) {
	u, err := s.svc.SetUserAdmin(ctx, req.GetUserId(), req.GetAdmin())
	if err != nil {
		return nil, err
	}
	return s.userProto(ctx, u)
}

// CreateServiceAccount creates a service account.
func (s *Server) CreateServiceAccount(ctx context.Context, req *keymintv1.CreateServiceAccountRequest) (*keymintv1.ServiceAccount, error) {
	u, err := s.svc.CreateServiceAccount(ctx, NewServiceAccount{Name: req.GetName(), Description: req.GetDescription(), Scopes: req.GetScopes()})
	if err != nil {
		return nil, err
	}
	return ServiceAccountProto(u), nil
}

// ListServiceAccounts lists the organization's service accounts.
func (s *Server) ListServiceAccounts(ctx context.Context, req *keymintv1.ListServiceAccountsRequest) (*keymintv1.ListServiceAccountsResponse, error) {
	list, next, err := s.svc.ListServiceAccounts(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &keymintv1.ListServiceAccountsResponse{ServiceAccounts: make([]*keymintv1.ServiceAccount, len(list)), NextPageToken: next}
	for i, u := range list {
		out.ServiceAccounts[i] = ServiceAccountProto(u)
	}
	return out, nil
}

// GetServiceAccount returns one service account.
func (s *Server) GetServiceAccount(ctx context.Context, req *keymintv1.GetServiceAccountRequest) (*keymintv1.ServiceAccount, error) {
	u, err := s.svc.ServiceAccount(ctx, req.GetServiceAccountId())
	if err != nil {
		return nil, err
	}
	return ServiceAccountProto(u), nil
}

// DeleteServiceAccount deletes a service account and revokes its tokens.
func (s *Server) DeleteServiceAccount(ctx context.Context, req *keymintv1.DeleteServiceAccountRequest) (*keymintv1.DeleteServiceAccountResponse, error) {
	rm, err := s.svc.DeleteServiceAccount(ctx, req.GetServiceAccountId())
	if err != nil {
		return nil, err
	}
	return &keymintv1.DeleteServiceAccountResponse{RevokedTokens: int32(len(rm.Revoked))}, nil
}

// ListOrganizations lists the caller's organization.
func (s *Server) ListOrganizations(ctx context.Context, _ *keymintv1.ListOrganizationsRequest) (*keymintv1.ListOrganizationsResponse, error) {
	list, err := s.svc.ListOrgs(ctx)
	if err != nil {
		return nil, err
	}
	out := &keymintv1.ListOrganizationsResponse{Organizations: make([]*keymintv1.Organization, len(list))}
	for i, o := range list {
		out.Organizations[i] = OrgProto(o)
	}
	return out, nil
}

// RenameOrganization renames the caller's organization.
func (s *Server) RenameOrganization(ctx context.Context, req *keymintv1.RenameOrganizationRequest) (*keymintv1.Organization, error) {
	o, err := s.svc.RenameOrg(ctx, req.GetOrganizationId(), req.GetName())
	if err != nil {
		return nil, err
	}
	return OrgProto(o), nil
}
