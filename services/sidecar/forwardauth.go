package sidecar

import (
	"net/http"

	"github.com/keymint/keymint/services/clientip"
)

// ForwardAuthPath is where both the central server and the sidecar serve
// forward-auth.
const ForwardAuthPath = "/v1/forward-auth"

// ForwardAuth is the nginx auth_request / Traefik ForwardAuth endpoint: any
// method; 200 with identity headers allows, 401/403 denies (503 when keymint
// cannot decide: nginx and Traefik both treat it as a deny).
type ForwardAuth struct {
	cfg Config
}

// NewForwardAuth returns the forward-auth handler over cfg.
func NewForwardAuth(cfg Config) *ForwardAuth { return &ForwardAuth{cfg: cfg} }

// ServeHTTP decides on the original request the proxy describes: Traefik's
// X-Forwarded-Method / X-Forwarded-Uri, or nginx's X-Original-Method /
// X-Original-URI, else this request's own method and URI.
func (f *ForwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := firstHeader(r, "X-Forwarded-Method", "X-Original-Method")
	if method == "" {
		method = r.Method
	}
	uri := firstHeader(r, "X-Forwarded-Uri", "X-Original-URI")
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	ip := clientip.String(f.cfg.Clients.FromHTTP(r.RemoteAddr, r.Header.Values("X-Forwarded-For")))
	d := decide(r.Context(), &f.cfg, r.Header.Get("Authorization"), method, uri, ip)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if d.allow {
		for _, kv := range d.headers {
			h.Set(kv[0], kv[1])
		}
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
	if c := wwwAuthenticate(d.status); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	if d.retryAfter != "" {
		h.Set("Retry-After", d.retryAfter)
	}
	w.WriteHeader(d.status)
	_, _ = w.Write(d.body)
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}
