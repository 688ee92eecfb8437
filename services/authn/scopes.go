package authn

import (
	"regexp"
	"slices"
	"strings"

	"github.com/keymint/keymint/services/fault"
)

// AdminScope lets a token of an org admin act as an admin. It always exists
// in every organization: what it grants is governed by the user's admin
// flag, not by the org's scope list or the user's held scopes.
const AdminScope = "keymint:admin"

// MaxScopes bounds a token's, a user's and an org's scope lists.
const MaxScopes = 64

// scopeChars and maxScopeLen are a scope's syntax. The length is checked
// apart: a counted repetition ({1,128}) compiles to a program 128 times
// the size (some 40 KB the collector marks on every cycle).
var scopeChars = regexp.MustCompile(`^[A-Za-z0-9_.:/*-]+$`)

const maxScopeLen = 128

// NormalizeScopes checks scope syntax and returns the scopes trimmed,
// sorted and unique; at most max of them.
func NormalizeScopes(scopes []string, max int) ([]string, error) {
	if len(scopes) > max {
		return nil, fault.Newf(fault.InvalidArgument, "at most %d scopes", max)
	}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		s = strings.TrimSpace(s)
		if len(s) > maxScopeLen || !scopeChars.MatchString(s) {
			return nil, fault.New(fault.InvalidArgument, "scope must be 1 to 128 characters of letters, digits and _ . : / * -")
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// CheckScopesDefined refuses (InvalidArgument) a scope the organization has
// not defined, when it defines any. defined is the org policy's
// AllowedScopes; both lists are sorted.
func CheckScopesDefined(defined, scopes []string) error {
	if len(defined) == 0 {
		return nil
	}
	// Errors name a scope by its position in the sorted list, never by its
	// text: a scope field may hold a pasted secret, never echoed.
	for i, s := range scopes {
		if _, ok := slices.BinarySearch(defined, s); !ok && s != AdminScope {
			return fault.Newf(fault.InvalidArgument, "scopes[%d] (sorted) is not defined in this organization (an org admin defines scopes in the org policy)", i)
		}
	}
	return nil
}

// CheckScopesHeld refuses (PermissionDenied) a scope the user does not hold,
// when the user's scopes are restricted: nobody mints a token that can do
// more than they can. The error names the scope when the organization's
// policy defines it (a name an admin chose, no secret), else its position.
// defined is the org policy's AllowedScopes; all lists are sorted.
func CheckScopesHeld(defined, held, scopes []string) error {
	if len(held) == 0 {
		return nil
	}
	for i, s := range scopes {
		if _, ok := slices.BinarySearch(held, s); !ok && s != AdminScope {
			if _, named := slices.BinarySearch(defined, s); named {
				return fault.Newf(fault.PermissionDenied, "you do not hold scope %q, so no token of yours can", s)
			}
			return fault.Newf(fault.PermissionDenied, "you do not hold scopes[%d] (sorted), so no token of yours can", i)
		}
	}
	return nil
}
