package accounts

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// GetOrgPolicy returns the caller's organization's token policy.
func (s *Server) GetOrgPolicy(ctx context.Context, _ *keymintv1.GetOrgPolicyRequest) (*keymintv1.OrgPolicy, error) {
	o, err := s.svc.OrgPolicy(ctx)
	if err != nil {
		return nil, err
	}
	return policyProto(o), nil
}

// UpdateOrgPolicy changes the caller's organization's token policy.
func (s *Server) UpdateOrgPolicy(ctx context.Context, req *keymintv1.UpdateOrgPolicyRequest) (*keymintv1.OrgPolicy, error) {
	in := req.GetPolicy()
	var p store.OrgPolicy
	p.AllowedScopes = in.GetAllowedScopes()
	for _, d := range []struct {
		name string
		v    *durationpb.Duration
		dst  *time.Duration
	}{
		{PolicyMaxTokenLifetime, in.GetMaxTokenLifetime(), &p.MaxTokenLifetime},
		{PolicyDefaultTokenLifetime, in.GetDefaultTokenLifetime(), &p.DefaultTokenLifetime},
		{PolicyMaxRotationGrace, in.GetMaxRotationGrace(), &p.MaxRotationGrace},
	} {
		if d.v == nil {
			continue
		}
		if err := d.v.CheckValid(); err != nil {
			return nil, fault.Newf(fault.InvalidArgument, "%s is not a valid duration", d.name)
		}
		*d.dst = d.v.AsDuration()
	}
	for _, w := range in.GetExpiryWarnings() {
		if err := w.CheckValid(); err != nil {
			return nil, fault.Newf(fault.InvalidArgument, "%s is not a valid duration", PolicyExpiryWarnings)
		}
		p.ExpiryWarnings = append(p.ExpiryWarnings, w.AsDuration())
	}
	o, err := s.svc.UpdateOrgPolicy(ctx, p, req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	return policyProto(o), nil
}

// UpdateUserScopes sets the scopes a user of the caller's organization holds.
func (s *Server) UpdateUserScopes(ctx context.Context, req *keymintv1.UpdateUserScopesRequest) (*keymintv1.User, error) {
	u, err := s.svc.UpdateUserScopes(ctx, req.GetUserId(), req.GetScopes())
	if err != nil {
		return nil, err
	}
	return &keymintv1.User{Id: u.ID, Email: u.Email, OrganizationId: u.OrgID, Admin: u.Admin, Scopes: u.Scopes}, nil
}

func policyProto(o store.Org) *keymintv1.OrgPolicy {
	dur := func(d time.Duration) *durationpb.Duration {
		if d == 0 {
			return nil
		}
		return durationpb.New(d)
	}
	var warnings []*durationpb.Duration
	for _, w := range o.Policy.ExpiryWarnings {
		warnings = append(warnings, durationpb.New(w))
	}
	return &keymintv1.OrgPolicy{
		ExpiryWarnings:       warnings,
		OrganizationId:       o.ID,
		AllowedScopes:        o.Policy.AllowedScopes,
		MaxTokenLifetime:     dur(o.Policy.MaxTokenLifetime),
		DefaultTokenLifetime: dur(o.Policy.DefaultTokenLifetime),
		MaxRotationGrace:     dur(o.Policy.MaxRotationGrace),
	}
}
