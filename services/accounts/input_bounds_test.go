package accounts

import (
	"strings"
	"testing"
)

// The documented input bounds, each end exact: an email of at most 254
// bytes with one '@' that neither starts nor ends it, a password of 10 to
// 1024 (characters, bytes), an organization name of 1 to 200 bytes. Shown
// failing on checkEmail's `len(email) > 254` → `>=`, `at < 1` → `<= 1`,
// `len(email)-1` → `+1` and → `-(...)`, CheckPassword's `<` → `<=` and `>`
// → `>=`, and CreateUser's `len(orgName) > 200` → `>=` (7 gremlins
// survivors).
func TestInputBoundsExact(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("a", n-len("@example.com")) + "@example.com" }
	for _, tc := range []struct {
		email string
		ok    bool
	}{
		{long(254), true}, {long(255), false}, {"a@b", true}, {"@b", false}, {"a@", false}, {"ab@", false}, {"a@b@c", false},
	} {
		if err := checkEmail(tc.email); (err == nil) != tc.ok {
			t.Errorf("checkEmail(%d bytes, %.12q): %v, want ok %v", len(tc.email), tc.email, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		password string
		ok       bool
	}{
		{strings.Repeat("é", MinPasswordLen), true}, {strings.Repeat("é", MinPasswordLen-1), false},
		{strings.Repeat("a", MaxPasswordLen), true}, {strings.Repeat("a", MaxPasswordLen+1), false},
	} {
		if err := CheckPassword(tc.password); (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%d runes, %d bytes): %v, want ok %v", len([]rune(tc.password)), len(tc.password), err, tc.ok)
		}
	}
	f := newAdminFixture(t)
	for _, tc := range []struct {
		org string
		ok  bool
	}{{strings.Repeat("o", 200), true}, {strings.Repeat("p", 201), false}} {
		_, _, err := f.svc.CreateUser(t.Context(), NewUser{Email: "bounds" + tc.org[:1] + "@example.com", OrgName: tc.org, Password: fixturePassword})
		if (err == nil) != tc.ok {
			t.Errorf("CreateUser with a %d-byte organization name: %v, want ok %v", len(tc.org), err, tc.ok)
		}
	}
}
