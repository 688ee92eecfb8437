package gateway

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/keymint/keymint/services/authn"
)

// Web sessions: the session secret lives in an HttpOnly cookie, and the
// gateway turns it into the x-keymint-session metadata the gRPC server
// authenticates. That metadata key is the gateway's alone: headerMatcher never
// forwards it from a caller, and the annotator replaces any value grpc-gateway
// might have copied.

// Session cookie names. The __Host- prefix makes the browser refuse the cookie
// unless it is Secure, has Path=/ and no Domain, so neither a sibling
// subdomain nor a plain-HTTP page can plant or overwrite it.
const (
	cookieName       = "keymint_session"
	secureCookieName = "__Host-keymint_session"
)

// csrfHeader is the custom header the web page sends on every call. A
// cross-site form cannot send a custom header, nor a JSON content type; a
// cross-site script cannot either without a CORS preflight, which keymint
// never grants.
const csrfHeader = "X-Keymint-Csrf"

// sessionKey is the request-context key of the cookie's session secret.
type sessionKey struct{}

// sessionFrom returns the session secret ServeHTTP took from the cookie, or "".
func sessionFrom(ctx context.Context) string {
	s, _ := ctx.Value(sessionKey{}).(string)
	return s
}

// sessionAnnotator is the ServeMux metadata annotator: it sends the cookie's
// session, if the request is to use it.
func sessionAnnotator(_ context.Context, r *http.Request) metadata.MD {
	if s := sessionFrom(r.Context()); s != "" {
		return metadata.Pairs(authn.HeaderSession, s)
	}
	return nil
}

// secure reports whether r gets the Secure, __Host- cookie: always when the
// gateway is configured so (TLS ends at a proxy in front of it), else when r
// itself came over TLS.
func (g *gateway) secure(r *http.Request) bool {
	return g.secureCookies || r.TLS != nil
}

// cookieName is the session cookie's name for r. Only this name is read: on
// a secure deployment a plain keymint_session cookie, which anyone on the
// network path could plant over HTTP, is ignored.
func (g *gateway) cookieName(r *http.Request) string {
	if g.secure(r) {
		return secureCookieName
	}
	return cookieName
}

// setSessionCookie hands the browser a new session secret, to be kept until
// the session's absolute expiry.
func (g *gateway) setSessionCookie(w http.ResponseWriter, r *http.Request, secret string, expires time.Time) {
	maxAge := int(time.Until(expires).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName(r),
		Value:    secret,
		Path:     "/",
		Expires:  expires.UTC(),
		MaxAge:   maxAge,
		Secure:   g.secure(r),
		HttpOnly: true,
		// Strict: the cookie never rides on a request another site starts,
		// not even a top-level link. The page loads its data with fetch from
		// its own origin, so it works the same.
		SameSite: http.SameSiteStrictMode,
	})
}

// clearSessionCookie tells the browser to drop the session cookie.
func (g *gateway) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName(r),
		Value:    "",
		Path:     "/",
		Expires:  time.Unix(0, 0),
		MaxAge:   -1,
		Secure:   g.secure(r),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// hasExplicitCredentials reports whether r carries credentials of its own
// (a token, or email + password). Those win over the cookie, and since no
// cross-site page can attach them, such a request needs no CSRF proof.
func hasExplicitCredentials(r *http.Request) bool {
	for key := range r.Header {
		if _, ok := headerMatcher(key); ok {
			return true
		}
	}
	return false
}

// withSession takes the session cookie into r's context when r is to be
// authenticated by it, and refuses a state-changing request that cannot
// prove it came from keymint's own page. Sign-in is held to the same rule, so
// another site cannot sign a browser in to an account of its choosing. It
// reports whether the request may go on.
func (g *gateway) withSession(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	session := ""
	if !hasExplicitCredentials(r) {
		if c, err := r.Cookie(g.cookieName(r)); err == nil && c.Value != "" && validMetadataValue(c.Value) {
			session = c.Value
		}
	}
	if session != "" || r.URL.Path == loginPath {
		if err := checkSameOrigin(r); err != nil {
			g.errs.write(w, r, err)
			return r, false
		}
	}
	if session == "" {
		return r, true
	}
	return r.WithContext(context.WithValue(r.Context(), sessionKey{}, session)), true
}
