package sidecar

import (
	"fmt"
	"net/http"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/tracing"
)

// ForwardAuthPath is where both the central server and the sidecar serve
// forward-auth.
const ForwardAuthPath = "/v1/forward-auth"

// Style says which headers describe the original request to forward-auth.
// A proxy sets its own headers and overwrites a client's copies of them,
// but passes every other header the client sent: believing another
// proxy's headers too would let the client pick the method and path.
type Style string

// The forward-auth styles.
const (
	// StyleAuto reads nginx's and Traefik's/Caddy's headers, and refuses
	// (400) a request where any two of them disagree. Safe with a proxy
	// that sets either family, but a client can refuse its own requests.
	StyleAuto Style = "auto"
	// StyleNginx believes X-Original-URI and X-Original-Method only (the
	// method defaults to the subrequest's own, which nginx sends as GET).
	StyleNginx Style = "nginx"
	// StyleTraefik believes X-Forwarded-Uri and X-Forwarded-Method only.
	StyleTraefik Style = "traefik"
	// StyleCaddy is Caddy forward_auth's: the same headers as Traefik.
	StyleCaddy Style = "caddy"
)

// ParseStyle reads a --forward-auth-style value; empty is StyleAuto.
func ParseStyle(s string) (Style, error) {
	switch st := Style(s); st {
	case "":
		return StyleAuto, nil
	case StyleAuto, StyleNginx, StyleTraefik, StyleCaddy:
		return st, nil
	}
	return "", fmt.Errorf("forward-auth-style %q: want auto, nginx, traefik or caddy", s)
}

// ForwardAuth is the nginx auth_request / Traefik ForwardAuth / Caddy
// forward_auth endpoint: any method; 200 with identity headers allows,
// 401/403/429 deny (400 for a path or proxy request keymint refuses, 503
// when keymint cannot decide: every proxy treats both as a deny).
type ForwardAuth struct {
	cfg Config
	ids *identities
}

// NewForwardAuth returns the forward-auth handler over cfg.
func NewForwardAuth(cfg Config) *ForwardAuth { return &ForwardAuth{cfg: cfg, ids: newIdentities()} }

// ServeHTTP decides on the original request the proxy describes, read as
// cfg.Style says. On allow it answers every identity header, an empty value
// when unset, so a proxy that copies them overwrites a client's copies.
func (f *ForwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Headers are read and written by their canonical keys, straight in
	// the maps: Header.Get/Set canonicalise the key on every call, which
	// was about 40% of this handler's instructions (see README, Performance).
	h := w.Header()
	h["Cache-Control"] = noStore
	method, uri, ok := original(r, f.cfg.Style)
	var d decision
	if ok {
		ip := clientip.String(f.cfg.Clients.FromHTTP(r.RemoteAddr, r.Header["X-Forwarded-For"]))
		var authorization string
		if v := r.Header["Authorization"]; len(v) > 0 {
			authorization = v[0]
		}
		d = decide(r.Context(), &f.cfg, f.ids, authorization, method, uri, ip)
	} else {
		d = decision{status: http.StatusBadRequest, body: bodyNoOriginal}
	}
	if d.allow {
		// Each value is a slice of the kept, read-only identity headers
		// (identities): full, so a later Add copies rather than writes
		// to them.
		for i := range d.headers {
			h[canonicalKey(d.headers[i][0])] = d.headers[i][1:2:2]
		}
		// traceparent for the proxy to pass on to the service behind it.
		tracing.Inject(r.Context(), h)
		if f.cfg.IdentityBody {
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(identityBody(d.valid))
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderReason, string(d.body))
	if c := wwwAuthenticate(d.status); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	if d.retryAfter != "" {
		h.Set("Retry-After", d.retryAfter)
	}
	w.WriteHeader(d.status)
	_, _ = w.Write(d.body)
}

// noStore is forward-auth's Cache-Control value, shared and never written to.
var noStore = []string{"no-store"}

// canonicalKey is http.CanonicalHeaderKey, constant for the identity headers.
func canonicalKey(k string) string {
	switch k {
	case HeaderTokenID:
		return "X-Keymint-Token-Id"
	case HeaderUserID:
		return "X-Keymint-User-Id"
	case HeaderOrgID:
		return "X-Keymint-Org-Id"
	case HeaderScopes:
		return "X-Keymint-Scopes"
	case HeaderExternalID:
		return "X-Keymint-External-Id"
	case HeaderPrincipalKind:
		return "X-Keymint-Principal-Kind"
	}
	return http.CanonicalHeaderKey(k)
}

// original returns the method and URI of the request the proxy asks about;
// ok is false when the style's headers are missing, repeated, or (auto)
// disagree.
func original(r *http.Request, style Style) (method, uri string, ok bool) {
	type family struct{ method, uri string }
	// mh and uh are canonical: the map lookup is what Header.Values does.
	read := func(mh, uh string) (f family, present, ok bool) {
		ms, us := r.Header[mh], r.Header[uh]
		if len(ms) > 1 || len(us) > 1 {
			return f, true, false
		}
		present = len(ms)+len(us) > 0
		if len(us) == 1 {
			f.uri = us[0]
		}
		f.method = r.Method
		if len(ms) == 1 {
			f.method = ms[0]
		}
		return f, present, f.uri != ""
	}
	nginx, nginxSeen, nginxOK := read("X-Original-Method", "X-Original-Uri")
	fwd, fwdSeen, fwdOK := read("X-Forwarded-Method", "X-Forwarded-Uri")
	switch style {
	case StyleNginx:
		return nginx.method, nginx.uri, nginxOK
	case StyleTraefik, StyleCaddy:
		return fwd.method, fwd.uri, fwdOK
	}
	// Auto: every family present must be complete, and all must agree.
	switch {
	case nginxSeen && fwdSeen:
		return nginx.method, nginx.uri, nginxOK && fwdOK && nginx == fwd
	case nginxSeen:
		return nginx.method, nginx.uri, nginxOK
	case fwdSeen:
		return fwd.method, fwd.uri, fwdOK
	}
	return "", "", false
}
