package tokens

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/google/uuid"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Page sizes of List.
const (
	maxPageSize     = 1000
	defaultPageSize = 100
)

// ListRequest selects a page of tokens.
type ListRequest struct {
	PageSize     int
	PageToken    string
	AllUsers     bool
	ShowInactive bool
}

// List returns a page of the caller's tokens (the org's for an admin asking
// for all users) and the token of the next page, empty on the last.
func (s *Service) List(ctx context.Context, req ListRequest) ([]store.Token, string, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return nil, "", err
	}
	f := store.TokenFilter{OrgID: p.OrgID, UserID: p.UserID, Active: !req.ShowInactive, Now: s.now().UTC()}
	if req.AllUsers {
		if !p.Admin {
			return nil, "", fault.New(fault.PermissionDenied, "listing all users' tokens needs an organization admin")
		}
		f.UserID = ""
	}
	switch {
	case req.PageSize < 0:
		return nil, "", fault.New(fault.InvalidArgument, "pageSize must not be negative")
	case req.PageSize == 0:
		f.Limit = defaultPageSize
	default:
		f.Limit = min(req.PageSize, maxPageSize)
	}
	if req.PageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(req.PageToken)
		if err != nil || uuid.Validate(string(after)) != nil {
			return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
		}
		f.AfterID = string(after)
	}
	// One extra row tells whether another page follows.
	f.Limit++
	list, err := s.store.ListTokens(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		// The page token names no token this caller can list.
		return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
	}
	if err != nil {
		return nil, "", fault.StoreFailure(err, "list tokens")
	}
	next := ""
	if len(list) == f.Limit {
		list = list[:f.Limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(list[len(list)-1].ID))
	}
	return list, next, nil
}

// CreatorEmails maps the creators of tokens to their emails, for display.
// A creator that cannot be read is left out.
func (s *Service) CreatorEmails(ctx context.Context, list []store.Token) map[string]string {
	out := map[string]string{}
	for _, t := range list {
		if _, done := out[t.CreatedBy]; done || t.CreatedBy == "" {
			continue
		}
		u, err := s.store.GetUser(ctx, t.CreatedBy)
		if err != nil {
			continue
		}
		out[t.CreatedBy] = u.Email
	}
	return out
}
