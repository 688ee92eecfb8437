package server

import (
	"net/http"

	"github.com/keymint/keymint/services/introspect"
	"github.com/keymint/keymint/services/secretscan"
	"github.com/keymint/keymint/services/sidecar"
)

// routes are the HTTP handlers of keymint serve beside the gateway.
type routes struct {
	forwardAuth http.Handler
	introspect  introspect.Config
	// secretScanning is GitHub's partner endpoint; nil when off.
	secretScanning http.Handler
}

// router is keymint serve's HTTP handler: a few exact paths, the gateway
// for the rest. Not an http.ServeMux: it would answer a non-canonical path
// ("//", "..") with a text/html redirect; the gateway answers it JSON.
func router(gw http.Handler, r routes) http.Handler {
	exact := map[string]http.Handler{
		sidecar.ForwardAuthPath: r.forwardAuth,
		introspect.Path:         introspect.New(r.introspect),
		introspect.MetadataPath: introspect.Metadata(r.introspect),
	}
	if r.secretScanning != nil {
		exact[secretscan.Path] = r.secretScanning
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if h, ok := exact[req.URL.Path]; ok {
			h.ServeHTTP(w, req)
			return
		}
		gw.ServeHTTP(w, req)
	})
}
