package gateway

import (
	"mime"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The CSRF rule for cookie-authenticated requests, in a file of its own so
// that a reviewer finds it by name.

// safeMethod reports whether m must not change state.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkSameOrigin is the CSRF rule for requests a cookie authenticates: a
// state-changing one needs Content-Type: application/json or the
// X-Keymint-CSRF (or X-Requested-With) header, and must not come from
// another origin by the browser's own account (Sec-Fetch-Site, Origin).
func checkSameOrigin(r *http.Request) error {
	if safeMethod(r.Method) {
		return nil
	}
	refuse := func(why string) error {
		return status.Error(codes.PermissionDenied, "cross-site request refused: "+why)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return refuse("it comes from another site")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return refuse("its Origin is not this server")
		}
	}
	if r.Header.Get(csrfHeader) != "" || r.Header.Get("X-Requested-With") != "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		return nil
	}
	return refuse("send Content-Type: application/json or an X-Keymint-CSRF header")
}
