package gateway

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestHeaderMatcher(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"authorization", "authorization", true},
		{"Authorization", "authorization", true},
		{"AUTHORIZATION", "authorization", true},
		{"x-api-email", "x-api-email", true},
		{"X-Api-Email", "x-api-email", true},
		{"X-API-EMAIL", "x-api-email", true},
		{"x-api-password", "x-api-password", true},
		{"X-Api-Password", "x-api-password", true},
		{"X-API-PASSWORD", "x-api-password", true},

		{"", "", false},
		{"authorization ", "", false},
		{" authorization", "", false},
		{"authorizations", "", false},
		{"x-api-emai", "", false},
		{"x-api-email-bin", "", false},
		{"Grpc-Metadata-Authorization", "", false},
		{"Grpc-Metadata-X-Api-Email", "", false},
		{"Grpc-Metadata-Foo", "", false},
		{"grpcgateway-authorization", "", false},
		{"Grpcgateway-Cookie", "", false},
		{"Cookie", "", false},
		{"Host", "", false},
		{"Content-Type", "", false},
		{"X-Custom", "", false},
		{"X-Forwarded-For", "", false},
		{"Grpc-Timeout", "", false},
		{"Proxy-Authorization", "", false},
		// U+017F (long s) folds to "s" under strings.EqualFold; it must not here.
		{"x-api-pa\u017f\u017fword", "", false},
		// U+212A (Kelvin sign) folds to "k" under Unicode rules.
		{"x-api-email\u212a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			got, ok := headerMatcher(tt.key)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("headerMatcher(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMuxHeaderMatcherLeavesAuthorizationToRuntime(t *testing.T) {
	t.Parallel()
	// grpc-gateway forwards Authorization itself; matching it again would
	// send it twice.
	for _, key := range []string{"Authorization", "authorization"} {
		if got, ok := muxHeaderMatcher(key); ok {
			t.Errorf("muxHeaderMatcher(%q) = %q, true; want false", key, got)
		}
	}
	for _, key := range []string{"X-Api-Email", "X-Api-Password"} {
		if _, ok := muxHeaderMatcher(key); !ok {
			t.Errorf("muxHeaderMatcher(%q) = false; want true", key)
		}
	}
}

func TestOutgoingMetadata(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "http://keymint.test/api-tokens", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("Authorization", "Bearer km_abc")
	r.Header.Set("X-Api-Email", "a@example.com")
	r.Header.Set("X-Api-Password", "pw")
	r.Header.Set("X-Custom", "1")
	r.Header.Set("Grpc-Metadata-Foo", "bar")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("Cookie", "a=b")
	r = stripHeaders(r)

	md := outgoingMetadata(r)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"authorization", "x-api-email", "x-api-password", "x-forwarded-for", "x-forwarded-host"}
	if !slices.Equal(keys, want) {
		t.Fatalf("metadata keys = %v, want %v", keys, want)
	}
	if got := md.Get("x-forwarded-for"); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Errorf("x-forwarded-for = %v, want the connection's address only", got)
	}
	if got := md.Get("x-forwarded-host"); !slices.Equal(got, []string{"keymint.test"}) {
		t.Errorf("x-forwarded-host = %v", got)
	}
}

func TestOutgoingMetadataSkipsInvalidValues(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/api-tokens", nil)
	r.Header.Set("X-Api-Email", "caf\u00e9@example.com")
	if got := outgoingMetadata(r).Get("x-api-email"); len(got) != 0 {
		t.Errorf("non-ASCII value forwarded: %q", got)
	}
}

// Every printable ASCII character and the space are legal gRPC metadata, so
// a password holding them reaches the server; a control byte or DEL is not
// forwarded. The edges kill headers.go:186:26 on 7eede42 (`> 0x7e` → `>=`:
// a password with a "~" dropped, its sign-in refused).
func TestOutgoingMetadataPrintableASCII(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"a b~c":     true,
		" ~":        true,
		"tab\there": false,
		"del\x7f":   false,
		"nul\x00":   false,
		"unit\x1f":  false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/api-tokens", nil)
		r.Header.Set("X-Api-Password", v)
		got := outgoingMetadata(r).Get("x-api-password")
		if forwarded := slices.Equal(got, []string{v}); forwarded != want || (!want && len(got) != 0) {
			t.Errorf("password %q: forwarded as %q, want forwarded %v", v, got, want)
		}
	}
}

// FuzzHeaderMatcher checks that only the three allow-listed names ever pass,
// always lower-case, and only for keys equal to them up to ASCII case.
func FuzzHeaderMatcher(f *testing.F) {
	for _, s := range []string{"Authorization", "X-Api-Email", "x-api-password", "Grpc-Metadata-Foo", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, ok := headerMatcher(key)
		if !ok {
			if got != "" {
				t.Fatalf("headerMatcher(%q) = %q, false; want empty name", key, got)
			}
			return
		}
		if !slices.Contains(forwardedHeaders[:], got) {
			t.Fatalf("headerMatcher(%q) passed %q, not an allow-listed name", key, got)
		}
		if got != strings.ToLower(got) {
			t.Fatalf("headerMatcher(%q) = %q, not lower-case", key, got)
		}
		if asciiLower(key) != got {
			t.Fatalf("headerMatcher(%q) = %q, but the key is not that name in another case", key, got)
		}
		if mux, mok := muxHeaderMatcher(key); mok && mux != got {
			t.Fatalf("muxHeaderMatcher(%q) = %q, headerMatcher says %q", key, mux, got)
		}
	})
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// The credential headers the gateway forwards may take maxForwardedHeaderBytes
// (8 KiB, names and values together) and no more: at the bound the call is
// served, one byte over it is a 431. Kills gateway.go:196:36 on 7eede42
// (`>` → `>=`: credentials of exactly 8 KiB refused).
func TestCredentialHeadersBound(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	fill := maxForwardedHeaderBytes - len("Authorization") - len(testToken) - len("X-Api-Password")
	for _, c := range []struct {
		extra  int
		status int
	}{{0, http.StatusOK}, {1, http.StatusRequestHeaderFieldsTooLarge}} {
		h := http.Header{"Authorization": {testToken}, "X-Api-Password": {strings.Repeat("p", fill+c.extra)}}
		resp, body := doRequest(t, http.MethodGet, g.url+"/v1/tokens/tok-1", "", h, 0)
		if resp.StatusCode != c.status {
			t.Errorf("credentials of %d bytes: %d %s, want %d", maxForwardedHeaderBytes+c.extra, resp.StatusCode, body, c.status)
		}
		if c.status != http.StatusOK {
			wantStatusJSON(t, resp, body, c.status, 3)
		}
	}
}
