package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/clientip"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// chartDir is the Helm chart; its values files are its overlays.
const chartDir = "helm/keymint"

// renderChart renders the chart as `helm template keymint -n keymint -f
// valuesFile --set ...` does, through Helm's own loader, values schema and
// engine, and decodes every object strictly.
func renderChart(t *testing.T, valuesFile string, set map[string]any) (*built, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals := map[string]any{}
	if valuesFile != "" {
		v, err := common.ReadValuesFile(filepath.Join(chartDir, valuesFile))
		if err != nil {
			t.Fatalf("%s: %v", valuesFile, err)
		}
		vals = v
	}
	vals = util.MergeTables(set, vals)
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "keymint", Namespace: "keymint", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	b := &built{dir: "helm " + valuesFile, namespaceExternal: true}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		docs, err := splitDocs([]byte(files[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, doc := range docs {
			o, err := decodeObject(doc, false)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if o.Kind == "Namespace" {
				b.namespaceExternal = false
			}
			b.objs = append(b.objs, o)
		}
	}
	return b, nil
}

func mustRender(t *testing.T, valuesFile string, set map[string]any) *built {
	t.Helper()
	b, err := renderChart(t, valuesFile, set)
	if err != nil {
		t.Fatalf("render %s: %v", valuesFile, err)
	}
	return b
}

// TestHelmChartRenders renders the chart for its default, production and dev
// values and holds each to the checks the kustomize base and overlays pass.
func TestHelmChartRenders(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		b := mustRender(t, "", nil)
		checkCommon(t, b)
		d := checkKeymint(t, b, 0)
		c := container(t, d, "keymint")
		opt := secretRefs(t, b, c)
		if opt["KEYMINT_PEPPER"] || opt["KEYMINT_DATABASE_URL"] || !opt["KEYMINT_REDIS_URL"] || !opt["KEYMINT_DATABASE_READ_URL"] || !opt["OTEL_EXPORTER_OTLP_HEADERS"] {
			t.Errorf("default: secret refs optional %v, want pepper and database required, the others optional", opt)
		}
		h := one[autoscalingv2.HorizontalPodAutoscaler](t, b, "keymint")
		if *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 6 {
			t.Errorf("default: HorizontalPodAutoscaler %d..%d, want 2..6", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		pdb := one[policyv1.PodDisruptionBudget](t, b, "keymint")
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("default: PodDisruptionBudget %+v, want maxUnavailable 1 only", pdb.Spec)
		}
		checkNetworkPolicy(t, b, d)
		if c.Image != "ghcr.io/keymint/keymint:0.1.0" {
			t.Errorf("default: image %q, want the chart's appVersion", c.Image)
		}
		if has[corev1.Namespace](b, "keymint") || has[corev1.PersistentVolumeClaim](b, "keymint-data") {
			t.Error("default: renders a Namespace or a PersistentVolumeClaim")
		}
		checkSameAsKustomize(t, b, build(t, filepath.Join(kubeDir, "base")))
	})
	t.Run("production", func(t *testing.T) {
		t.Parallel()
		b := mustRender(t, "values-production.yaml", nil)
		checkCommon(t, b)
		d := checkKeymint(t, b, 0)
		c := container(t, d, "keymint")
		for name, optional := range secretRefs(t, b, c) {
			if optional && !optionalEverywhere[name] {
				t.Errorf("production: %s must be required (optional: false)", name)
			}
		}
		checkNetworkPolicy(t, b, d)
		h := one[autoscalingv2.HorizontalPodAutoscaler](t, b, "keymint")
		if *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 10 {
			t.Errorf("production: HorizontalPodAutoscaler %d..%d, want 3..10", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		pdb := one[policyv1.PodDisruptionBudget](t, b, "keymint")
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
			t.Errorf("production: PodDisruptionBudget %+v, want minAvailable 2 only", pdb.Spec)
		}
		if !regexp.MustCompile(`^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$`).MatchString(c.Image) {
			t.Errorf("production: image %q, want a registry image by digest", c.Image)
		}
		cm := one[corev1.ConfigMap](t, b, c.EnvFrom[0].ConfigMapRef.Name)
		if _, err := clientip.ParseTrusted(cm.Data["KEYMINT_TRUSTED_PROXIES"]); err != nil || cm.Data["KEYMINT_TRUSTED_PROXIES"] == "" {
			t.Errorf("production: KEYMINT_TRUSTED_PROXIES=%q (%v), want the proxies' range", cm.Data["KEYMINT_TRUSTED_PROXIES"], err)
		}
		checkSameAsKustomize(t, b, build(t, filepath.Join(kubeDir, "overlays/production")))
	})
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		b := mustRender(t, "values-dev.yaml", nil)
		checkCommon(t, b)
		d := checkKeymint(t, b, 1)
		c := container(t, d, "keymint")
		for name, optional := range secretRefs(t, b, c) {
			if !optional {
				t.Errorf("dev: %s must be optional: dev runs without the Secret", name)
			}
		}
		if has[autoscalingv2.HorizontalPodAutoscaler](b, "keymint") {
			t.Error("dev: one SQLite file cannot be shared: no HorizontalPodAutoscaler")
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
			t.Errorf("dev: strategy %+v, want Recreate (one writer on the volume)", d.Spec.Strategy)
		}
		cm := one[corev1.ConfigMap](t, b, c.EnvFrom[0].ConfigMapRef.Name)
		if cm.Data["KEYMINT_DATA_DIR"] != "/data" {
			t.Errorf("dev: KEYMINT_DATA_DIR=%q, want /data", cm.Data["KEYMINT_DATA_DIR"])
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/data" && m.Name == "data" }) ||
			!slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
				return v.Name == "data" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "keymint-data"
			}) {
			t.Error("dev: /data must be mounted from the PersistentVolumeClaim keymint-data")
		}
		one[corev1.PersistentVolumeClaim](t, b, "keymint-data")
		if c.Image != "keymint:dev" {
			t.Errorf("dev: image %q, want the locally built keymint:dev", c.Image)
		}
		checkSameAsKustomize(t, b, build(t, filepath.Join(kubeDir, "overlays/dev")))
	})
	t.Run("secret keys", func(t *testing.T) {
		t.Parallel()
		// A Secret another tool writes (a PostgreSQL operator's "uri"):
		// the read URL and the primary's come from the keys named.
		b := mustRender(t, "values-production.yaml", map[string]any{"secrets": map[string]any{
			"existingSecret": "pg-app",
			"keys":           map[string]any{"databaseUrl": "uri", "databaseReadUrl": "ro-uri"},
			"optional":       map[string]any{"databaseReadUrl": false},
		}})
		c := container(t, checkKeymint(t, b, 0), "keymint")
		for name, want := range map[string]string{"KEYMINT_DATABASE_URL": "uri", "KEYMINT_DATABASE_READ_URL": "ro-uri", "KEYMINT_PEPPER": "pepper"} {
			e := env(c, name)
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("secret keys: %s is not read from a Secret", name)
			}
			r := e.ValueFrom.SecretKeyRef
			if r.Name != "pg-app" || r.Key != want || r.Optional == nil || *r.Optional {
				t.Errorf("secret keys: %s reads %s/%s (optional %v), want pg-app/%s, required", name, r.Name, r.Key, r.Optional, want)
			}
		}
	})
	t.Run("namespace", func(t *testing.T) {
		t.Parallel()
		b := mustRender(t, "values-production.yaml", map[string]any{"namespace": map[string]any{"create": true}})
		checkCommon(t, b)
		checkKeymint(t, b, 0) // now with the Namespace and its Pod Security labels
	})
}

// checkSameAsKustomize compares what the chart renders with what the
// matching kustomization builds: the same kinds and names, and the same
// pod spec (security contexts, probes, ports, secrets, resources, spread)
// and settings, up to the labels Helm adds.
func checkSameAsKustomize(t *testing.T, h, k *built) {
	t.Helper()
	kinds := func(b *built) []string {
		var out []string
		for _, o := range b.objs {
			if o.Kind != "Namespace" {
				out = append(out, o.Kind+"/"+o.Metadata.Name)
			}
		}
		sort.Strings(out)
		return out
	}
	if hk, kk := kinds(h), kinds(k); !slices.Equal(hk, kk) {
		t.Errorf("%s renders %v; %s builds %v", h.dir, hk, k.dir, kk)
	}
	hd, kd := one[appsv1.Deployment](t, h, "keymint"), one[appsv1.Deployment](t, k, "keymint")
	hp, kp := hd.Spec.Template.Spec.DeepCopy(), kd.Spec.Template.Spec.DeepCopy()
	// The selector labels differ (Helm adds the release's instance label);
	// everything else in the pod must be the same.
	// The order of volumes and mounts means nothing (kustomize's merge puts
	// a patch's first).
	for _, p := range []*corev1.PodSpec{hp, kp} {
		slices.SortFunc(p.Volumes, func(a, b corev1.Volume) int { return strings.Compare(a.Name, b.Name) })
		for i := range p.Containers {
			slices.SortFunc(p.Containers[i].VolumeMounts, func(a, b corev1.VolumeMount) int { return strings.Compare(a.Name, b.Name) })
		}
		for i := range p.TopologySpreadConstraints {
			p.TopologySpreadConstraints[i].LabelSelector = nil
		}
		for i := range p.Containers {
			p.Containers[i].Image = ""
			for j := range p.Containers[i].EnvFrom {
				p.Containers[i].EnvFrom[j].ConfigMapRef.Name = ""
			}
		}
	}
	if hy, ky := toYAML(t, hp), toYAML(t, kp); hy != ky {
		t.Errorf("%s: the pod spec differs from %s's:\n--- helm\n%s\n--- kustomize\n%s", h.dir, k.dir, hy, ky)
	}
	if !equalPtr(hd.Spec.Replicas, kd.Spec.Replicas) || hd.Spec.Strategy.Type != kd.Spec.Strategy.Type {
		t.Errorf("%s: replicas %v strategy %s; %s: %v %s", h.dir, hd.Spec.Replicas, hd.Spec.Strategy.Type, k.dir, kd.Spec.Replicas, kd.Spec.Strategy.Type)
	}
	hc := one[corev1.ConfigMap](t, h, "keymint-config")
	kc := one[corev1.ConfigMap](t, k, "keymint-config")
	if hy, ky := toYAML(t, hc.Data), toYAML(t, kc.Data); hy != ky {
		t.Errorf("%s: settings differ from %s's:\n--- helm\n%s\n--- kustomize\n%s", h.dir, k.dir, hy, ky)
	}
	for _, kind := range []string{"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} {
		var hs, ks any
		for _, o := range h.objs {
			if o.Kind == kind {
				hs = specOf(o.obj)
			}
		}
		for _, o := range k.objs {
			if o.Kind == kind {
				ks = specOf(o.obj)
			}
		}
		if hy, ky := stripSelectors(toYAML(t, hs)), stripSelectors(toYAML(t, ks)); hy != ky {
			t.Errorf("%s: %s differs from %s's:\n--- helm\n%s\n--- kustomize\n%s", h.dir, kind, k.dir, hy, ky)
		}
	}
}

func equalPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	y, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(y)
}

// specOf returns the spec of the objects checkSameAsKustomize compares.
func specOf(o any) any {
	switch o := o.(type) {
	case *autoscalingv2.HorizontalPodAutoscaler:
		return o.Spec
	case *policyv1.PodDisruptionBudget:
		return o.Spec
	case *networkingv1.NetworkPolicy:
		return o.Spec
	}
	return nil
}

// instanceLabel is the label Helm's selectors add to kustomize's.
var instanceLabel = regexp.MustCompile(`(?m)^\s*app\.kubernetes\.io/instance: keymint\n`)

// stripSelectors drops Helm's instance label from a spec's selectors, the
// one legitimate difference from a kustomize build.
func stripSelectors(y string) string {
	return instanceLabel.ReplaceAllString(y, "")
}

// TestHelmChartRefusesBadValues: values that would render a broken or unsafe
// release fail the render, with a message naming the value.
func TestHelmChartRefusesBadValues(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		set  map[string]any
		want string
	}{
		"both pdb bounds":     {map[string]any{"podDisruptionBudget": map[string]any{"minAvailable": 2}}, "exactly one of minAvailable"},
		"no pdb bound":        {map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": nil}}, "exactly one of minAvailable"},
		"sqlite with hpa":     {map[string]any{"persistence": map[string]any{"enabled": true}}, "autoscaling.enabled=false"},
		"sqlite replicas":     {map[string]any{"persistence": map[string]any{"enabled": true}, "autoscaling": map[string]any{"enabled": false}, "replicaCount": 2}, "replicaCount=1"},
		"secret in config":    {map[string]any{"config": map[string]any{"extra": map[string]any{"KEYMINT_DATABASE_URL": "postgres://u:pw@h/db"}}}, "is a secret"},
		"not a keymint var":   {map[string]any{"config": map[string]any{"extra": map[string]any{"PATH": "/x"}}}, "PATH"},
		"bad digest":          {map[string]any{"image": map[string]any{"digest": "sha256:abc"}}, "image.digest"},
		"no secret name":      {map[string]any{"secrets": map[string]any{"existingSecret": ""}}, "secrets.existingSecret"},
		"unknown value":       {map[string]any{"replicas": 3}, "replicas"},
		"bad secret key":      {map[string]any{"secrets": map[string]any{"keys": map[string]any{"databaseReadUrl": "a/b"}}}, "databaseReadUrl"},
		"unknown secret key":  {map[string]any{"secrets": map[string]any{"keys": map[string]any{"readUrl": "x"}}}, "readUrl"},
		"misspelled optional": {map[string]any{"secrets": map[string]any{"optional": map[string]any{"database_url": true}}}, "database_url"},
		"wrong type":          {map[string]any{"autoscaling": map[string]any{"minReplicas": "two"}}, "minReplicas"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := renderChart(t, "", tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render with %v: %v, want an error about %q", tc.set, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Errorf("the error echoes the secret: %v", err)
			}
		})
	}
}

// TestHelmValuesDocumented: every value in values.yaml is described in the
// chart's README.
func TestHelmValuesDocumented(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(data, &vals); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, m map[string]any)
	n := 0
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(key+".", sub)
				continue
			}
			n++
			if !strings.Contains(string(readme), "`"+key+"`") {
				t.Errorf("value %s is not described in %s/README.md", key, chartDir)
			}
		}
	}
	walk("", vals)
	if n < 20 {
		t.Errorf("found only %d values", n)
	}
}
