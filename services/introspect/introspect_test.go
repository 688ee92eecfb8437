package introspect

import (
	"encoding/base64"
	"testing"
)

func TestCallerToken(t *testing.T) {
	t.Parallel()
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer km_abc", "km_abc", true},
		{"bearer   km_abc  ", "km_abc", true},
		{basic("gateway:km_abc"), "km_abc", true},
		// RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
		{basic("my%20gw:km%5Fabc"), "km_abc", true},
		{basic(":km_abc"), "km_abc", true},
		{basic("gateway:"), "", false},
		{basic("no-colon"), "", false},
		{basic("gw:bad%zz"), "", false},
		{"Basic !!!", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"km_abc", "", false},
		{"Digest x", "", false},
		{"", "", false},
	} {
		got, ok := callerToken(c.header)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.header, got, ok, c.want, c.ok)
		}
	}
}
