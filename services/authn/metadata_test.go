package authn

import (
	"strings"
	"testing"
)

func TestTokenFromAuthorization(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"bearer", "Bearer km_abc", "km_abc"},
		{"lower-case scheme", "bearer km_abc", "km_abc"},
		{"upper-case scheme", "BEARER km_abc", "km_abc"},
		{"raw token (Upsolver form)", "km_abc", "km_abc"},
		{"surrounding space", "  Bearer km_abc \t", "km_abc"},
		{"space after scheme", "Bearer    km_abc", "km_abc"},
		{"raw token with space", " km_abc ", "km_abc"},
		{"empty", "", ""},
		{"blank", " \t ", ""},
		{"scheme alone", "Bearer", "Bearer"},
		{"scheme and space alone", "Bearer ", "Bearer"},
		{"scheme and spaces alone", "Bearer    ", "Bearer"},
		{"tab after scheme is no scheme", "Bearer\tkm_abc", "Bearer\tkm_abc"},
		{"other scheme kept whole", "Basic dXNlcjpwdw==", "Basic dXNlcjpwdw=="},
		{"scheme without space", "Bearerkm_abc", "Bearerkm_abc"},
		{"doubled scheme", "Bearer Bearer km_abc", "Bearer km_abc"},
		{"Unicode look-alike is no scheme", "Bearer\u00a0km_abc", "Bearer\u00a0km_abc"},
		{"long s is no scheme", "Bearer\u017f km_abc", "Bearer\u017f km_abc"},
		{"token keeps inner space", "Bearer km abc", "km abc"},
	} {
		if got := TokenFromAuthorization(tc.in); got != tc.want {
			t.Errorf("%s: TokenFromAuthorization(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestBearerRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tok := range []string{"km_abc", "km_" + strings.Repeat("x", 200)} {
		if got := TokenFromAuthorization(Bearer(tok)); got != tok {
			t.Errorf("TokenFromAuthorization(Bearer(%q)) = %q", tok, got)
		}
	}
}

// The keys are a wire contract with every client, the gateway and the
// sidecar: changing one breaks deployed callers.
func TestMetadataKeys(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		HeaderAuthorization: "authorization",
		HeaderEmail:         "x-api-email",
		HeaderPassword:      "x-api-password",
		HeaderSession:       "x-keymint-session",
	} {
		if got != want {
			t.Errorf("metadata key %q, want %q", got, want)
		}
		if got != strings.ToLower(got) {
			t.Errorf("metadata key %q is not lower-case, as gRPC metadata needs", got)
		}
	}
}
