package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeServiceKeys are the compose-spec service keys this file may use;
// anything else is most likely a typo compose would reject.
var composeServiceKeys = map[string]bool{
	"build": true, "image": true, "command": true, "entrypoint": true, "environment": true, "env_file": true,
	"depends_on": true, "ports": true, "expose": true, "volumes": true, "healthcheck": true, "restart": true,
	"read_only": true, "tmpfs": true, "security_opt": true, "cap_drop": true, "user": true, "networks": true,
	"labels": true, "init": true, "stop_grace_period": true,
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(j, &c); err != nil {
		t.Fatal(err)
	}
	for k := range c {
		if !slices.Contains([]string{"name", "services", "volumes", "networks", "configs", "secrets"}, k) {
			t.Errorf("compose.yaml: unknown top-level key %q", k)
		}
	}
	services, _ := c["services"].(map[string]any)
	for _, want := range []string{"postgres", "redis", "keymint", "nginx"} {
		if services[want] == nil {
			t.Errorf("compose.yaml: no %s service", want)
		}
	}
	for name, s := range services {
		svc, _ := s.(map[string]any)
		for k := range svc {
			if !composeServiceKeys[k] {
				t.Errorf("compose.yaml: service %s: unknown key %q", name, k)
			}
		}
		if svc["image"] == nil && svc["build"] == nil {
			t.Errorf("compose.yaml: service %s has neither image nor build", name)
		}
		for _, p := range list(svc["ports"]) {
			if s, _ := p.(string); !strings.HasPrefix(s, "127.0.0.1:") {
				t.Errorf("compose.yaml: service %s publishes %v beyond 127.0.0.1", name, p)
			}
		}
		for dep, cond := range mapOf(svc["depends_on"]) {
			if services[dep] == nil || dig(cond, "condition") == nil {
				t.Errorf("compose.yaml: service %s depends on %s: unknown service or no condition", name, dep)
			}
			if dig(cond, "condition") == "service_healthy" && dig(services[dep], "healthcheck") == nil {
				t.Errorf("compose.yaml: service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, v := range list(svc["volumes"]) {
			s, _ := v.(string)
			if src, _, _ := strings.Cut(s, ":"); strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("compose.yaml: service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}

	km := services["keymint"]
	ctx, _ := dig(km, "build", "context").(string)
	df, _ := dig(km, "build", "dockerfile").(string)
	if ctx != "../.." || df != "deploy/Dockerfile" {
		t.Errorf("compose.yaml: keymint builds %s with %s, want ../.. with deploy/Dockerfile", ctx, df)
	}
	if _, err := os.Stat(filepath.Join("compose", ctx, df)); err != nil {
		t.Errorf("compose.yaml: keymint's Dockerfile: %v", err)
	}
	kenv := mapOf(dig(km, "environment"))
	for k, want := range map[string]string{
		"KEYMINT_HTTP_ADDR": "0.0.0.0:8080",
		"KEYMINT_GRPC_ADDR": "0.0.0.0:9090",
		"KEYMINT_REDIS_URL": "redis://redis:6379/0",
	} {
		if kenv[k] != want {
			t.Errorf("compose.yaml: keymint %s=%v, want %s", k, kenv[k], want)
		}
	}
	if u, _ := kenv["KEYMINT_DATABASE_URL"].(string); !strings.HasPrefix(u, "postgres://") || !strings.Contains(u, "@postgres:5432/") {
		t.Errorf("compose.yaml: keymint KEYMINT_DATABASE_URL=%q, want the postgres service", u)
	}
	if p, _ := kenv["KEYMINT_PEPPER"].(string); !strings.HasPrefix(p, "${KEYMINT_PEPPER:?") {
		t.Errorf("compose.yaml: KEYMINT_PEPPER=%q, want ${KEYMINT_PEPPER:?...} so compose stops without one", p)
	}
	for _, dep := range []string{"postgres", "redis"} {
		if dig(km, "depends_on", dep, "condition") != "service_healthy" {
			t.Errorf("compose.yaml: keymint must wait for %s to be healthy", dep)
		}
	}
	if h := dig(km, "healthcheck", "test"); !slices.Equal(list(h), []any{"CMD", "/keymint", "healthcheck"}) {
		t.Errorf("compose.yaml: keymint healthcheck %v, want keymint's own probe (the image has no shell)", h)
	}
	if dig(services["nginx"], "depends_on", "keymint", "condition") != "service_healthy" {
		t.Error("compose.yaml: nginx must wait for keymint to be healthy")
	}
	if kenv["KEYMINT_FORWARD_AUTH_STYLE"] != "nginx" {
		t.Errorf("compose.yaml: KEYMINT_FORWARD_AUTH_STYLE=%v, want nginx", kenv["KEYMINT_FORWARD_AUTH_STYLE"])
	}
	nginxIP, _ := dig(services["nginx"], "networks", "default", "ipv4_address").(string)
	if nginxIP == "" || kenv["KEYMINT_TRUSTED_PROXIES"] != nginxIP {
		t.Errorf("compose.yaml: KEYMINT_TRUSTED_PROXIES=%v, want nginx's fixed address %q", kenv["KEYMINT_TRUSTED_PROXIES"], nginxIP)
	}
	if img, _ := dig(services["postgres"], "image").(string); !strings.HasPrefix(img, "postgres:16") {
		t.Errorf("compose.yaml: postgres image %q, want postgres:16", img)
	}

	example, err := os.ReadFile("compose/.env.example")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^KEYMINT_PEPPER=$`).Match(example) {
		t.Error("compose/.env.example must carry an empty KEYMINT_PEPPER= for the reader to fill")
	}
	ignore, err := os.ReadFile("compose/.gitignore")
	if err != nil || !slices.Contains(strings.Fields(string(ignore)), ".env") {
		t.Error("compose/.gitignore must ignore .env (it holds the pepper)")
	}
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }
