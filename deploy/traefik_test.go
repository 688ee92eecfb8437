package deploy

import (
	"bytes"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/sidecar"
)

// The Traefik example is decoded strictly into the schema below, a subset
// of Traefik's dynamic configuration (github.com/traefik/traefik/v3
// pkg/config/dynamic) written out by hand: those types live in Traefik's
// main module, whose dependency graph (every provider's SDK, Kubernetes,
// consul, ...) would dwarf keymint's. Field names and JSON spelling follow
// Traefik's file-provider documentation; a field not listed here, including
// a misspelled one, fails the test.

type traefikDynamic struct {
	HTTP struct {
		Routers     map[string]traefikRouter     `json:"routers"`
		Middlewares map[string]traefikMiddleware `json:"middlewares"`
		Services    map[string]traefikService    `json:"services"`
	} `json:"http"`
}

type traefikRouter struct {
	EntryPoints []string `json:"entryPoints"`
	Rule        string   `json:"rule"`
	Middlewares []string `json:"middlewares"`
	Service     string   `json:"service"`
	Priority    int      `json:"priority,omitempty"`
}

type traefikMiddleware struct {
	ForwardAuth *struct {
		Address                  string   `json:"address"`
		TrustForwardHeader       *bool    `json:"trustForwardHeader"`
		AuthRequestHeaders       []string `json:"authRequestHeaders"`
		AuthResponseHeaders      []string `json:"authResponseHeaders"`
		AuthResponseHeadersRegex string   `json:"authResponseHeadersRegex,omitempty"`
	} `json:"forwardAuth,omitempty"`
	Headers *struct {
		CustomRequestHeaders map[string]string `json:"customRequestHeaders"`
	} `json:"headers,omitempty"`
}

type traefikService struct {
	LoadBalancer struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		PassHostHeader *bool `json:"passHostHeader,omitempty"`
	} `json:"loadBalancer"`
}

// checkTraefik checks a Traefik dynamic configuration puts keymint's
// forward-auth in front of every router safely.
func checkTraefik(t *testing.T, data []byte) {
	t.Helper()
	var cfg traefikDynamic
	if err := strictUnmarshal(data, &cfg); err != nil {
		t.Fatalf("traefik: %v", err)
	}
	h := cfg.HTTP
	var auth, drop string
	for name, m := range h.Middlewares {
		if (m.ForwardAuth == nil) == (m.Headers == nil) {
			t.Errorf("traefik: middleware %s: want exactly one of forwardAuth and headers", name)
		}
		if fa := m.ForwardAuth; fa != nil {
			auth = name
			u, err := url.Parse(fa.Address)
			if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Path != sidecar.ForwardAuthPath {
				t.Errorf("traefik: %s: address %q, want keymint's %s", name, fa.Address, sidecar.ForwardAuthPath)
			}
			if fa.TrustForwardHeader == nil || *fa.TrustForwardHeader {
				t.Errorf("traefik: %s must say trustForwardHeader: false", name)
			}
			if !slices.Equal(fa.AuthRequestHeaders, []string{"Authorization"}) {
				t.Errorf("traefik: %s: authRequestHeaders %v, want only Authorization", name, fa.AuthRequestHeaders)
			}
			var got []string
			for _, v := range fa.AuthResponseHeaders {
				got = append(got, strings.ToLower(v))
			}
			want := slices.Clone(sidecar.IdentityHeaders)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("traefik: %s: authResponseHeaders %v, want every identity header %v", name, fa.AuthResponseHeaders, want)
			}
		}
		if hd := m.Headers; hd != nil {
			if v, ok := hd.CustomRequestHeaders["Authorization"]; ok && v == "" {
				drop = name
			}
		}
	}
	if auth == "" || drop == "" {
		t.Fatalf("traefik: want a forwardAuth middleware and one removing Authorization (found %q, %q)", auth, drop)
	}
	if len(h.Routers) == 0 {
		t.Error("traefik: no routers")
	}
	for name, r := range h.Routers {
		ia, id := slices.Index(r.Middlewares, auth), slices.Index(r.Middlewares, drop)
		if ia != 0 || id < ia {
			t.Errorf("traefik: router %s: middlewares %v, want %s first and %s after it", name, r.Middlewares, auth, drop)
		}
		if _, ok := h.Services[r.Service]; !ok {
			t.Errorf("traefik: router %s: service %q is not defined", name, r.Service)
		}
		if r.Rule == "" || len(r.EntryPoints) == 0 {
			t.Errorf("traefik: router %s: want a rule and entry points", name)
		}
	}
	for name, s := range h.Services {
		if len(s.LoadBalancer.Servers) == 0 {
			t.Errorf("traefik: service %s has no servers", name)
		}
	}
}

func TestTraefikConfig(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("traefik/dynamic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkTraefik(t, data)
	// The schema is strict: a misspelled or wrongly cased field fails.
	for _, bad := range []string{"trustForwardHeaders:", "trustforwardheader:"} {
		b := bytes.Replace(data, []byte("        trustForwardHeader:"), []byte("        "+bad), 1)
		if bytes.Equal(b, data) {
			t.Fatal("trustForwardHeader not found")
		}
		var cfg traefikDynamic
		if err := strictUnmarshal(b, &cfg); err == nil {
			t.Errorf("the Traefik schema accepted %q", bad)
		}
	}
}
