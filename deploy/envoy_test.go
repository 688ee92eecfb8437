package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/keymint/keymint/services/sidecar"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// Envoy typed_config type URLs the example may use (the schema check
// accepts any registered type; this keeps the filter set deliberate).
var envoyTypes = map[string]bool{
	"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": true,
	"type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz":                               true,
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router":                                    true,
	"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions":                            true,
	"type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation":     true,
}

// validateEnvoySchema decodes an Envoy bootstrap against Envoy's own API
// (go-control-plane): unknown fields, bad enum values and unregistered
// typed_config types fail, and every message, including each typed_config
// unpacked, must pass Envoy's validation rules.
func validateEnvoySchema(t *testing.T, j []byte) {
	t.Helper()
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &b); err != nil {
		t.Fatalf("envoy.yaml does not decode as an Envoy v3 bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Errorf("envoy.yaml: %v", err)
	}
	type validator interface{ ValidateAll() error }
	var check func(where string, a *anypb.Any)
	check = func(where string, a *anypb.Any) {
		if a == nil {
			t.Errorf("envoy.yaml: %s has no typed_config", where)
			return
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("envoy.yaml: %s: %v", where, err)
			return
		}
		if v, ok := m.(validator); !ok {
			t.Errorf("envoy.yaml: %s: %s has no validation rules", where, a.TypeUrl)
		} else if err := v.ValidateAll(); err != nil {
			t.Errorf("envoy.yaml: %s: %v", where, err)
		}
		if hcm, ok := m.(*hcmv3.HttpConnectionManager); ok {
			for _, f := range hcm.HttpFilters {
				check("http filter "+f.Name, f.GetTypedConfig())
			}
			for _, e := range hcm.EarlyHeaderMutationExtensions {
				check("early header mutation "+e.Name, e.GetTypedConfig())
			}
		}
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				check("listener "+l.Name+" filter "+f.Name, f.GetTypedConfig())
			}
		}
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		for name, a := range c.TypedExtensionProtocolOptions {
			check("cluster "+c.Name+" "+name, a)
		}
	}
}

// dig walks decoded JSON by map keys (string) and list indexes (int).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }

// socketAddr reads a socket_address as host:port.
func socketAddr(v any) (string, int32) {
	host, _ := dig(v, "socket_address", "address").(string)
	port, _ := dig(v, "socket_address", "port_value").(float64)
	return fmt.Sprintf("%s:%d", host, int(port)), int32(port)
}

func typeURLs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "@type" {
				s, _ := e.(string)
				*out = append(*out, s)
			}
			typeURLs(e, out)
		}
	case []any:
		for _, e := range v {
			typeURLs(e, out)
		}
	}
}

// checkEnvoyConfig checks the Envoy example's bootstrap: one listener whose
// HTTP connection manager runs ext_authz (gRPC, V3, fail closed, no body, no
// peer certificate) before the router. It returns the ext_authz endpoint
// and the listener port.
func checkEnvoyConfig(t *testing.T, data []byte) (authzAddr string, listenPort int32) {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	validateEnvoySchema(t, j)
	var cfg map[string]any
	if err := json.Unmarshal(j, &cfg); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	var urls []string
	typeURLs(cfg, &urls)
	for _, u := range urls {
		if !envoyTypes[u] {
			t.Errorf("envoy.yaml: @type %q is not one of the known type URLs", u)
		}
	}
	if addr, _ := socketAddr(dig(cfg, "admin", "address")); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("envoy.yaml: admin on %s: keep it on loopback", addr)
	}

	clusters := map[string]string{}
	for _, c := range list(dig(cfg, "static_resources", "clusters")) {
		name, _ := dig(c, "name").(string)
		eps := list(dig(c, "load_assignment", "endpoints", 0, "lb_endpoints"))
		if len(eps) != 1 || dig(c, "load_assignment", "cluster_name") != name {
			t.Errorf("envoy.yaml: cluster %s: want one endpoint and a matching load_assignment", name)
			continue
		}
		clusters[name], _ = socketAddr(dig(eps[0], "endpoint", "address"))
	}

	listeners := list(dig(cfg, "static_resources", "listeners"))
	if len(listeners) != 1 {
		t.Fatalf("envoy.yaml: %d listeners, want 1", len(listeners))
	}
	var addr string
	addr, listenPort = socketAddr(dig(listeners[0], "address"))
	if addr != "0.0.0.0:8000" {
		t.Errorf("envoy.yaml: listener on %s, want 0.0.0.0:8000", addr)
	}
	chains := list(dig(listeners[0], "filter_chains"))
	if len(chains) != 1 {
		t.Fatalf("envoy.yaml: %d filter chains, want 1", len(chains))
	}
	filters := list(dig(chains[0], "filters"))
	if len(filters) != 1 || dig(filters[0], "name") != "envoy.filters.network.http_connection_manager" ||
		dig(filters[0], "typed_config", "@type") != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
		t.Fatalf("envoy.yaml: the listener must have exactly the HTTP connection manager")
	}
	hcm := dig(filters[0], "typed_config")
	for _, r := range list(dig(hcm, "route_config", "virtual_hosts", 0, "routes")) {
		if tpf := dig(r, "typed_per_filter_config"); tpf != nil {
			t.Errorf("envoy.yaml: a route overrides filters (%v): nothing may skip ext_authz", tpf)
		}
		if c, _ := dig(r, "route", "cluster").(string); c != "app" {
			t.Errorf("envoy.yaml: a route goes to %q, want the app cluster", c)
		}
	}
	if clusters["app"] != "127.0.0.1:5678" {
		t.Errorf("envoy.yaml: app cluster at %q, want 127.0.0.1:5678", clusters["app"])
	}

	hf := list(dig(hcm, "http_filters"))
	if len(hf) != 2 {
		t.Fatalf("envoy.yaml: %d http filters, want ext_authz then router", len(hf))
	}
	if dig(hf[0], "name") != "envoy.filters.http.ext_authz" ||
		dig(hf[0], "typed_config", "@type") != "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" {
		t.Errorf("envoy.yaml: first http filter must be ext_authz")
	}
	if dig(hf[1], "name") != "envoy.filters.http.router" ||
		dig(hf[1], "typed_config", "@type") != "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" {
		t.Errorf("envoy.yaml: last http filter must be the router")
	}
	authz, _ := dig(hf[0], "typed_config").(map[string]any)
	if authz["transport_api_version"] != "V3" {
		t.Errorf("envoy.yaml: ext_authz transport_api_version %v, want V3", authz["transport_api_version"])
	}
	if v, ok := authz["failure_mode_allow"].(bool); !ok || v {
		t.Error("envoy.yaml: ext_authz must say failure_mode_allow: false (fail closed)")
	}
	if v, ok := authz["include_peer_certificate"].(bool); !ok || v {
		t.Error("envoy.yaml: ext_authz must say include_peer_certificate: false")
	}
	if _, ok := authz["with_request_body"]; ok {
		t.Error("envoy.yaml: ext_authz must not send request bodies")
	}
	if _, ok := authz["http_service"]; ok {
		t.Error("envoy.yaml: ext_authz must use grpc_service, not http_service")
	}
	// Only the token goes to keymint; keymint may change only the identity
	// headers and the token, and anything else is an error.
	if p := list(dig(authz, "allowed_headers", "patterns")); len(p) != 1 || dig(p[0], "exact") != "authorization" {
		t.Errorf("envoy.yaml: ext_authz allowed_headers %v, want exactly authorization", p)
	}
	rules := dig(authz, "decoder_header_mutation_rules")
	if dig(rules, "disallow_all") != true || dig(rules, "disallow_is_error") != true {
		t.Error("envoy.yaml: ext_authz decoder_header_mutation_rules must disallow all but the allow_expression, as an error")
	}
	re, _ := dig(rules, "allow_expression", "regex").(string)
	allow, err := regexp.Compile(re)
	if err != nil {
		t.Errorf("envoy.yaml: allow_expression %q: %v", re, err)
	} else {
		for _, h := range append(slices.Clone(sidecar.IdentityHeaders), "authorization") {
			if !allow.MatchString(h) {
				t.Errorf("envoy.yaml: allow_expression %q refuses %s", re, h)
			}
		}
		for _, h := range []string{"x-keymint-user-idx", "host", ":path", "x-forwarded-for", "cookie"} {
			if allow.MatchString(h) {
				t.Errorf("envoy.yaml: allow_expression %q lets keymint change %s", re, h)
			}
		}
	}
	// A client's identity headers are removed before ext_authz runs.
	var removed []string
	for _, e := range list(dig(hcm, "early_header_mutation_extensions")) {
		for _, m := range list(dig(e, "typed_config", "mutations")) {
			if r, ok := dig(m, "remove").(string); ok {
				removed = append(removed, r)
			}
		}
	}
	for _, h := range sidecar.IdentityHeaders {
		if !slices.Contains(removed, h) {
			t.Errorf("envoy.yaml: a client's %s is not removed (early_header_mutation_extensions)", h)
		}
	}
	cluster, _ := dig(authz, "grpc_service", "envoy_grpc", "cluster_name").(string)
	authzAddr = clusters[cluster]
	if authzAddr == "" {
		t.Errorf("envoy.yaml: ext_authz cluster %q is not defined", cluster)
	}
	for _, c := range list(dig(cfg, "static_resources", "clusters")) {
		if dig(c, "name") == cluster &&
			dig(c, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicit_http_config", "http2_protocol_options") == nil {
			t.Errorf("envoy.yaml: cluster %s must speak HTTP/2 (gRPC)", cluster)
		}
	}
	return authzAddr, listenPort
}

// checkSidecarRoutes loads a routes file with the sidecar's own loader and
// checks the example rule: GET /reports needs reports:read.
func checkSidecarRoutes(t *testing.T, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := sidecar.LoadRules(path)
	if err != nil {
		t.Fatalf("routes.yaml: %v", err)
	}
	if got := rules.Scopes("GET", "/reports/2026?x=1"); !slices.Equal(got, []string{"reports:read"}) {
		t.Errorf("routes.yaml: GET /reports/... needs %q, want [reports:read]", got)
	}
	if got := rules.Scopes("GET", "/health"); len(got) != 0 {
		t.Errorf("routes.yaml: GET /health needs %q, want no scope", got)
	}
}
