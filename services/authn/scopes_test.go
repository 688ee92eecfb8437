package authn

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/fault"
)

func TestNormalizeScopes(t *testing.T) {
	t.Parallel()
	got, err := NormalizeScopes([]string{" b:read", "a:write", "b:read", "c/*", AdminScope}, MaxScopes)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:write", "b:read", "c/*", AdminScope}; !slices.Equal(got, want) {
		t.Errorf("NormalizeScopes = %q, want %q", got, want)
	}
	if got, err := NormalizeScopes(nil, MaxScopes); err != nil || len(got) != 0 {
		t.Errorf("NormalizeScopes(nil) = %q, %v", got, err)
	}
	for _, tc := range []struct {
		name   string
		scopes []string
		max    int
	}{
		{"empty", []string{""}, MaxScopes},
		{"blank", []string{"  "}, MaxScopes},
		{"inner space", []string{"a b"}, MaxScopes},
		{"too long", []string{strings.Repeat("a", 129)}, MaxScopes},
		{"comma", []string{"a,b"}, MaxScopes},
		{"quote", []string{`a"`}, MaxScopes},
		{"non-ASCII", []string{"lesen:\u00c4"}, MaxScopes},
		{"control character", []string{"a\x00"}, MaxScopes},
		{"pasted secret", []string{"ok", "km_live_abc def"}, MaxScopes},
		{"too many", []string{"a", "b", "c"}, 2},
	} {
		_, err := NormalizeScopes(tc.scopes, tc.max)
		if fault.CodeOf(err) != fault.InvalidArgument {
			t.Errorf("%s: NormalizeScopes(%q) error %v, want InvalidArgument", tc.name, tc.scopes, err)
			continue
		}
		// A scope field may hold a pasted secret: never echoed.
		if msg := publicMessage(err); strings.Contains(msg, "km_live") {
			t.Errorf("%s: the error %q echoes the scope", tc.name, msg)
		}
	}
	if _, err := NormalizeScopes([]string{strings.Repeat("a", 128)}, MaxScopes); err != nil {
		t.Errorf("a 128-character scope: %v", err)
	}
}

func TestCheckScopesDefined(t *testing.T) {
	t.Parallel()
	defined := []string{"a:read", "b:read"}
	for _, tc := range []struct {
		name            string
		defined, scopes []string
		wantCode        fault.Code
		wantOK          bool
	}{
		{"no policy allows any", nil, []string{"x:any"}, 0, true},
		{"defined", defined, []string{"a:read", "b:read"}, 0, true},
		{"admin scope always exists", defined, []string{"a:read", AdminScope}, 0, true},
		{"none asked", defined, nil, 0, true},
		{"undefined", defined, []string{"a:read", "c:secret-looking"}, fault.InvalidArgument, false},
	} {
		err := CheckScopesDefined(tc.defined, tc.scopes)
		if tc.wantOK {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if fault.CodeOf(err) != tc.wantCode {
			t.Errorf("%s: error %v, want code %v", tc.name, err, tc.wantCode)
		}
		// Named by position in the sorted list, never by text.
		if msg := publicMessage(err); strings.Contains(msg, "c:secret-looking") || !strings.Contains(msg, "scopes[1]") {
			t.Errorf("%s: message %q, want the position and no scope text", tc.name, msg)
		}
	}
}

func TestCheckScopesHeld(t *testing.T) {
	t.Parallel()
	defined := []string{"a:read", "b:read", "c:write"}
	held := []string{"a:read", "b:read"}
	for _, tc := range []struct {
		name                   string
		defined, held, scopes  []string
		wantErr, wantInMessage string
	}{
		{"unrestricted user holds all", defined, nil, []string{"c:write"}, "", ""},
		{"held", defined, held, []string{"a:read", "b:read"}, "", ""},
		{"admin scope is governed by the admin flag", defined, held, []string{AdminScope}, "", ""},
		{"defined but not held: named", defined, held, []string{"a:read", "c:write"}, "denied", `"c:write"`},
		{"undefined and not held: by position", nil, held, []string{"a:read", "z:pasted-secret"}, "denied", "scopes[1]"},
	} {
		err := CheckScopesHeld(tc.defined, tc.held, tc.scopes)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if fault.CodeOf(err) != fault.PermissionDenied {
			t.Errorf("%s: error %v, want PermissionDenied", tc.name, err)
			continue
		}
		msg := publicMessage(err)
		if !strings.Contains(msg, tc.wantInMessage) || strings.Contains(msg, "pasted-secret") {
			t.Errorf("%s: message %q, want it to contain %s and no undefined scope", tc.name, msg, tc.wantInMessage)
		}
	}
}

// publicMessage is the text a caller would see for err.
func publicMessage(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Public
	}
	return ""
}
