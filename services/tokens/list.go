package tokens

import (
	"context"
	"errors"
	"strings"
	"time"

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
	// Status wins over ShowInactive when set.
	Status        store.TokenStatus
	Query         string
	Scope         string
	ExpiresWithin time.Duration
	// UserID: org admins only.
	UserID  string
	OrderBy string
	// ServiceAccountID lists that service account's tokens (admins only).
	ServiceAccountID string
}

// List limits.
const (
	maxQueryLen      = 200
	maxExpiresWithin = 10 * 365 * 24 * time.Hour
)

// tokenOrders maps ListTokens' order_by to store orders.
var tokenOrders = map[string]store.TokenOrder{
	"":                    store.OrderCreatedDesc,
	"create_time":         store.OrderCreatedDesc,
	"create_time desc":    store.OrderCreatedDesc,
	"create_time asc":     store.OrderCreatedAsc,
	"last_used_time":      store.OrderLastUsedAsc,
	"last_used_time asc":  store.OrderLastUsedAsc,
	"last_used_time desc": store.OrderLastUsedDesc,
	"expire_time":         store.OrderExpiresAsc,
	"expire_time asc":     store.OrderExpiresAsc,
	"expire_time desc":    store.OrderExpiresDesc,
}

// List returns a page of the caller's tokens (the org's for an admin asking
// for all users) and the token of the next page, empty on the last.
func (s *Service) List(ctx context.Context, req ListRequest) ([]store.Token, string, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return nil, "", err
	}
	f := store.TokenFilter{OrgID: p.OrgID, UserID: p.UserID, Active: !req.ShowInactive, Now: s.now().UTC()}
	switch {
	case req.ServiceAccountID != "" && (req.AllUsers || req.UserID != ""):
		return nil, "", fault.New(fault.InvalidArgument, "set allUsers, userId or serviceAccountId, not two of them")
	case req.ServiceAccountID != "":
		owner, err := s.owner(ctx, p, req.ServiceAccountID)
		if err != nil {
			return nil, "", err
		}
		f.UserID = owner.ID
	case req.AllUsers:
		if !p.Admin {
			return nil, "", fault.New(fault.PermissionDenied, "listing all users' tokens needs an organization admin")
		}
		// People's tokens: service accounts' are listed apart.
		f.UserID, f.OwnerKind = "", store.KindUser
	}
	if req.UserID != "" {
		if !p.Admin {
			return nil, "", fault.New(fault.PermissionDenied, "listing another user's tokens needs an organization admin")
		}
		if uuid.Validate(req.UserID) != nil {
			return nil, "", fault.New(fault.InvalidArgument, "userId is not a user id")
		}
		f.UserID = req.UserID
	}
	if len(req.Query) > maxQueryLen {
		return nil, "", fault.New(fault.InvalidArgument, "query must be at most 200 characters")
	}
	if len(req.Scope) > maxQueryLen {
		return nil, "", fault.New(fault.InvalidArgument, "scope must be at most 200 characters")
	}
	f.Query, f.Scope, f.Status = req.Query, req.Scope, req.Status
	order, ok := tokenOrders[strings.Join(strings.Fields(req.OrderBy), " ")]
	if !ok {
		return nil, "", fault.New(fault.InvalidArgument, "orderBy must be create_time, last_used_time or expire_time, optionally followed by asc or desc")
	}
	f.Order = order
	switch {
	case req.ExpiresWithin < 0 || req.ExpiresWithin > maxExpiresWithin:
		return nil, "", fault.New(fault.InvalidArgument, "expiresWithin must be between 0 and 10 years")
	case req.ExpiresWithin > 0:
		f.ExpiresBefore = f.Now.Add(req.ExpiresWithin)
		if f.Status == store.TokenStatusAny {
			f.Status = store.TokenStatusActive
		}
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
		after, ok := store.ParsePageToken(req.PageToken)
		if !ok {
			return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
		}
		f.AfterID = after
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
		next = store.PageToken(list[len(list)-1].ID)
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
