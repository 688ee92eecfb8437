package deploy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymint/keymint/services/clientip"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// built is the output of one kustomize build.
type built struct {
	dir  string
	objs []object
	// namespaceExternal: the namespace is made outside the build (a Helm
	// release namespace), so no Namespace object is expected.
	namespaceExternal bool
}

// kustomizeMu serialises kustomize builds: krusty's Run sets and lazily
// parses kyaml's package-global OpenAPI schema without a lock, so two
// parallel builds race (kubernetes-sigs/kustomize#4824, #5805), which
// -race reports as a failure of whichever tests are running.
var kustomizeMu sync.Mutex

// kustomize builds the kustomization in dir.
func kustomize(dir string) (resmap.ResMap, error) {
	kustomizeMu.Lock()
	defer kustomizeMu.Unlock()
	return krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
}

func build(t *testing.T, dir string) *built {
	t.Helper()
	m, err := kustomize(dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &built{dir: dir}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		o, err := decodeObject(y, false)
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		b.objs = append(b.objs, o)
	}
	return b
}

// all returns the built objects of one type.
func all[T any](b *built) []*T {
	var out []*T
	for _, o := range b.objs {
		if v, ok := o.obj.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the built object of type T named name, failing if missing.
func one[T any](t *testing.T, b *built, name string) *T {
	t.Helper()
	for _, o := range b.objs {
		if v, ok := o.obj.(*T); ok && o.Metadata.Name == name {
			return v
		}
	}
	t.Fatalf("%s: no %T named %q", b.dir, *new(T), name)
	return nil
}

func has[T any](b *built, name string) bool {
	for _, o := range b.objs {
		if _, ok := o.obj.(*T); ok && o.Metadata.Name == name {
			return true
		}
	}
	return false
}

// selects reports whether a matchLabels selector selects labels.
func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("deployment %s: no container %q", d.Name, name)
	return nil
}

func env(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func containerPort(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkCommon holds for every build: hardened pods, references that resolve,
// selectors that select, and no secret material.
func checkCommon(t *testing.T, b *built) {
	t.Helper()
	if len(b.objs) == 0 {
		t.Fatalf("%s builds to nothing", b.dir)
	}
	for _, s := range all[corev1.Secret](b) {
		if len(s.Data)+len(s.StringData) > 0 {
			t.Errorf("%s: Secret %s holds data: secrets are created by operators, never kept in git", b.dir, s.Name)
		}
	}
	deployments := all[appsv1.Deployment](b)
	for _, d := range deployments {
		checkDeployment(t, b, d)
	}
	for _, s := range all[corev1.Service](b) {
		var target *appsv1.Deployment
		for _, d := range deployments {
			if selects(s.Spec.Selector, d.Spec.Template.Labels) {
				target = d
			}
		}
		if target == nil {
			t.Errorf("%s: Service %s selects no Deployment's pods", b.dir, s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			found := false
			for _, c := range target.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					if (p.TargetPort.StrVal != "" && cp.Name == p.TargetPort.StrVal) ||
						(p.TargetPort.StrVal == "" && cp.ContainerPort == p.TargetPort.IntVal) {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("%s: Service %s port %s: target port %s is no container port of %s", b.dir, s.Name, p.Name, p.TargetPort.String(), target.Name)
			}
		}
	}
	for _, p := range all[policyv1.PodDisruptionBudget](b) {
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("%s: PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", b.dir, p.Name)
		}
		if p.Spec.Selector == nil || !slices.ContainsFunc(deployments, func(d *appsv1.Deployment) bool {
			return selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}) {
			t.Errorf("%s: PodDisruptionBudget %s selects no Deployment's pods", b.dir, p.Name)
		}
	}
	for _, h := range all[autoscalingv2.HorizontalPodAutoscaler](b) {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || !has[appsv1.Deployment](b, ref.Name) {
			t.Errorf("%s: HorizontalPodAutoscaler %s targets %s %s %s, which is not in the build", b.dir, h.Name, ref.APIVersion, ref.Kind, ref.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas || len(h.Spec.Metrics) == 0 {
			t.Errorf("%s: HorizontalPodAutoscaler %s: want 1 <= minReplicas <= maxReplicas and a metric", b.dir, h.Name)
		}
	}
}

// checkDeployment checks one Deployment's pod: every container non-root with
// a read-only root filesystem, no privilege, resources set, and every name it
// refers to present in the build.
func checkDeployment(t *testing.T, b *built, d *appsv1.Deployment) {
	t.Helper()
	where := b.dir + ": Deployment " + d.Name
	pod := &d.Spec.Template.Spec
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchExpressions) > 0 || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("%s: selector must be matchLabels that the pod template carries", where)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", where)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("%s: shares a host namespace", where)
	}
	if sa := pod.ServiceAccountName; sa != "" && sa != "default" && !has[corev1.ServiceAccount](b, sa) {
		t.Errorf("%s: ServiceAccount %s is not in the build", where, sa)
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		switch {
		case v.ConfigMap != nil:
			if !has[corev1.ConfigMap](b, v.ConfigMap.Name) {
				t.Errorf("%s: volume %s: ConfigMap %s is not in the build", where, v.Name, v.ConfigMap.Name)
			}
		case v.PersistentVolumeClaim != nil:
			if !has[corev1.PersistentVolumeClaim](b, v.PersistentVolumeClaim.ClaimName) {
				t.Errorf("%s: volume %s: PersistentVolumeClaim %s is not in the build", where, v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		case v.EmptyDir != nil:
		default:
			t.Errorf("%s: volume %s: only configMap, persistentVolumeClaim and emptyDir volumes are expected", where, v.Name)
		}
	}
	if len(pod.InitContainers)+len(pod.EphemeralContainers) > 0 {
		t.Errorf("%s: init or ephemeral containers are not checked: teach checkDeployment first", where)
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		cw := where + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", cw)
			continue
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("%s: runAsNonRoot must be true", cw)
		}
		if (sc.RunAsUser != nil && *sc.RunAsUser == 0) || (sc.RunAsUser == nil && psc.RunAsUser != nil && *psc.RunAsUser == 0) {
			t.Errorf("%s: runs as uid 0", cw)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem must be true", cw)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", cw)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", cw)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", cw)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile must be RuntimeDefault (pod or container)", cw)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("%s: no %s request", cw, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				t.Errorf("%s: no %s limit", cw, r)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s: mounts volume %s, which the pod does not have", cw, m.Name)
			}
		}
		for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			if p == nil {
				continue
			}
			var port string
			switch {
			case p.HTTPGet != nil:
				port = p.HTTPGet.Port.StrVal
			case p.TCPSocket != nil:
				port = p.TCPSocket.Port.StrVal
			}
			if port != "" && containerPort(c, port) == 0 {
				t.Errorf("%s: a probe uses port %q, which the container does not name", cw, port)
			}
		}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil && !has[corev1.ConfigMap](b, e.ConfigMapRef.Name) {
				t.Errorf("%s: envFrom ConfigMap %s is not in the build", cw, e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				t.Errorf("%s: envFrom a whole Secret: reference single keys instead", cw)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && r.Name != secretName {
				t.Errorf("%s: env %s reads Secret %s; the manifests know only %s", cw, e.Name, r.Name, secretName)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !has[corev1.ConfigMap](b, r.Name) {
				t.Errorf("%s: env %s reads ConfigMap %s, which is not in the build", cw, e.Name, r.Name)
			}
		}
	}
}

// checkKeymint checks what holds for keymint in every overlay and returns its
// Deployment.
func checkKeymint(t *testing.T, b *built, replicas int32) *appsv1.Deployment {
	t.Helper()
	for _, o := range b.objs {
		if o.Kind != "Namespace" && o.Metadata.Namespace != "keymint" {
			t.Errorf("%s: %s %s is in namespace %q, want keymint", b.dir, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	if !b.namespaceExternal {
		ns := one[corev1.Namespace](t, b, "keymint")
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("%s: namespace keymint does not enforce the restricted Pod Security Standard", b.dir)
		}
	}
	sa := one[corev1.ServiceAccount](t, b, "keymint")
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("%s: ServiceAccount keymint must not automount a token", b.dir)
	}

	d := one[appsv1.Deployment](t, b, "keymint")
	if replicas == 0 && d.Spec.Replicas != nil {
		t.Errorf("%s: keymint replicas %d: the HorizontalPodAutoscaler owns the count, and every apply would reset it", b.dir, *d.Spec.Replicas)
	} else if replicas != 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas != replicas) {
		t.Errorf("%s: keymint replicas %v, want %d", b.dir, d.Spec.Replicas, replicas)
	}
	pod := &d.Spec.Template.Spec
	if pod.ServiceAccountName != "keymint" {
		t.Errorf("%s: keymint runs as ServiceAccount %q", b.dir, pod.ServiceAccountName)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false: the keymint Service would inject KEYMINT_* variables", b.dir)
	}
	if len(pod.TopologySpreadConstraints) == 0 && (pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil) {
		t.Errorf("%s: keymint pods are not spread (topologySpreadConstraints or podAntiAffinity)", b.dir)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: keymint pod must run as non-root uid 65532", b.dir)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: keymint has %d containers, want 1", b.dir, len(pod.Containers))
	}
	c := container(t, d, "keymint")
	if !slices.Equal(c.Args, []string{"serve"}) || len(c.Command) > 0 {
		t.Errorf("%s: keymint args %q command %q, want args [serve] and the image's entrypoint", b.dir, c.Args, c.Command)
	}
	if containerPort(c, "http") != 8080 || containerPort(c, "grpc") != 9090 {
		t.Errorf("%s: keymint ports %v, want http 8080 and grpc 9090", b.dir, c.Ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s: keymint %s probe must GET %s on port http", b.dir, name, want)
		}
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("%s: keymint container must run as uid 65532", b.dir)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" }) {
		t.Errorf("%s: keymint has no writable /tmp", b.dir)
	}

	// Settings: from the ConfigMap, listening on all interfaces, JSON logs.
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil {
		t.Fatalf("%s: keymint must take its settings from one ConfigMap (envFrom)", b.dir)
	}
	cm := one[corev1.ConfigMap](t, b, c.EnvFrom[0].ConfigMapRef.Name)
	for k, want := range map[string]string{
		"KEYMINT_HTTP_ADDR":  "0.0.0.0:8080",
		"KEYMINT_GRPC_ADDR":  "0.0.0.0:9090",
		"KEYMINT_LOG_FORMAT": "json",
	} {
		if cm.Data[k] != want {
			t.Errorf("%s: ConfigMap %s: %s=%q, want %q", b.dir, cm.Name, k, cm.Data[k], want)
		}
	}
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, "KEYMINT_") {
			t.Errorf("%s: ConfigMap %s: %s is no keymint setting", b.dir, cm.Name, k)
		}
		if k == "KEYMINT_PEPPER" || k == "KEYMINT_DATABASE_URL" || k == "KEYMINT_DATABASE_READ_URL" || k == "KEYMINT_REDIS_URL" || (strings.Contains(v, "://") && strings.Contains(v, "@")) {
			t.Errorf("%s: ConfigMap %s: %s belongs in the Secret", b.dir, cm.Name, k)
		}
	}

	// Shutdown: preStop sleep + KEYMINT_SHUTDOWN_TIMEOUT must fit in the grace period.
	shutdown, err := time.ParseDuration(cm.Data["KEYMINT_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Errorf("%s: KEYMINT_SHUTDOWN_TIMEOUT: %v", b.dir, err)
	}
	var sleep time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown+sleep {
		t.Errorf("%s: terminationGracePeriodSeconds %v must exceed preStop sleep %s + shutdown timeout %s", b.dir, g, sleep, shutdown)
	}

	svc := one[corev1.Service](t, b, "keymint")
	ports := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p
	}
	if p := ports["http"]; p.Port != 8080 || p.TargetPort.StrVal != "http" {
		t.Errorf("%s: Service keymint http port %+v", b.dir, p)
	}
	if p := ports["grpc"]; p.Port != 9090 || p.TargetPort.StrVal != "grpc" || p.AppProtocol == nil || *p.AppProtocol != "grpc" {
		t.Errorf("%s: Service keymint grpc port %+v, want 9090 with appProtocol grpc", b.dir, p)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("%s: Service keymint is %s: keep the gRPC port inside the cluster", b.dir, svc.Spec.Type)
	}
	one[policyv1.PodDisruptionBudget](t, b, "keymint")
	return d
}

// secretRefs returns keymint's secret-backed variables: for each, whether
// its reference is optional; a missing one is reported.
// optionalEverywhere are the secret settings a production deployment may
// go without: a read replica, and a collector asking for credentials.
var optionalEverywhere = map[string]bool{"KEYMINT_DATABASE_READ_URL": true, "OTEL_EXPORTER_OTLP_HEADERS": true}

func secretRefs(t *testing.T, b *built, c *corev1.Container) map[string]bool {
	t.Helper()
	keys := map[string]string{"KEYMINT_PEPPER": "pepper", "KEYMINT_DATABASE_URL": "database-url", "KEYMINT_REDIS_URL": "redis-url",
		"KEYMINT_DATABASE_READ_URL": "database-read-url", "OTEL_EXPORTER_OTLP_HEADERS": "otlp-headers"}
	out := map[string]bool{}
	for name, key := range keys {
		e := env(c, name)
		if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: %s must come from a secretKeyRef", b.dir, name)
			continue
		}
		r := e.ValueFrom.SecretKeyRef
		if r.Name != secretName || r.Key != key {
			t.Errorf("%s: %s reads %s/%s, want %s/%s", b.dir, name, r.Name, r.Key, secretName, key)
		}
		out[name] = r.Optional != nil && *r.Optional
	}
	return out
}

func TestKustomizeBuilds(t *testing.T) {
	t.Parallel()
	cases := map[string]func(t *testing.T, b *built){
		"base": func(t *testing.T, b *built) {
			d := checkKeymint(t, b, 0)
			opt := secretRefs(t, b, container(t, d, "keymint"))
			if opt["KEYMINT_PEPPER"] || opt["KEYMINT_DATABASE_URL"] || !opt["KEYMINT_REDIS_URL"] || !opt["KEYMINT_DATABASE_READ_URL"] || !opt["OTEL_EXPORTER_OTLP_HEADERS"] {
				t.Errorf("base: secret refs optional %v, want pepper and database required, the others optional", opt)
			}
			one[autoscalingv2.HorizontalPodAutoscaler](t, b, "keymint")
			checkNetworkPolicy(t, b, d)
		},
		"overlays/dev": func(t *testing.T, b *built) {
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
			if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("dev: strategy %q, want Recreate (one writer on the volume)", d.Spec.Strategy.Type)
			}
			cm := one[corev1.ConfigMap](t, b, c.EnvFrom[0].ConfigMapRef.Name)
			if cm.Data["KEYMINT_DATA_DIR"] != "/data" {
				t.Errorf("dev: KEYMINT_DATA_DIR=%q, want /data", cm.Data["KEYMINT_DATA_DIR"])
			}
			var dataVolume string
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/data" {
					dataVolume = m.Name
				}
			}
			ok := false
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == dataVolume && v.PersistentVolumeClaim != nil {
					ok = true
				}
			}
			if !ok {
				t.Error("dev: /data must be mounted from a PersistentVolumeClaim")
			}
			pdb := one[policyv1.PodDisruptionBudget](t, b, "keymint")
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() < 1 {
				t.Error("dev: with one replica the PodDisruptionBudget must allow an eviction (maxUnavailable >= 1)")
			}
			if _, err := clientip.ParseTrusted(cm.Data["KEYMINT_TRUSTED_PROXIES"]); err != nil || cm.Data["KEYMINT_TRUSTED_PROXIES"] == "" {
				t.Errorf("dev: KEYMINT_TRUSTED_PROXIES=%q (%v), want the proxies' range", cm.Data["KEYMINT_TRUSTED_PROXIES"], err)
			}
			if img := c.Image; img != "keymint:dev" {
				t.Errorf("dev: image %q, want the locally built keymint:dev", img)
			}
		},
		"overlays/production": func(t *testing.T, b *built) {
			d := checkKeymint(t, b, 0)
			c := container(t, d, "keymint")
			for name, optional := range secretRefs(t, b, c) {
				if optional && !optionalEverywhere[name] {
					t.Errorf("production: %s must be required (optional: false)", name)
				}
			}
			checkNetworkPolicy(t, b, d)
			h := one[autoscalingv2.HorizontalPodAutoscaler](t, b, "keymint")
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 10 {
				t.Errorf("production: HorizontalPodAutoscaler %v..%d, want 3..10", h.Spec.MinReplicas, h.Spec.MaxReplicas)
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
		},
		"examples/envoy-sidecar": func(t *testing.T, b *built) {
			checkEnvoyExample(t, b)
			checkAdmitted(t, one[appsv1.Deployment](t, b, "resource-service"), "grpc")
		},
		"examples/nginx-auth-request": func(t *testing.T, b *built) {
			d := one[appsv1.Deployment](t, b, "nginx-resource-service")
			n := container(t, d, "nginx")
			var conf *corev1.ConfigMap
			for _, v := range d.Spec.Template.Spec.Volumes {
				for _, m := range n.VolumeMounts {
					if m.Name == v.Name && m.MountPath == "/etc/nginx/conf.d" && v.ConfigMap != nil {
						conf = one[corev1.ConfigMap](t, b, v.ConfigMap.Name)
					}
				}
			}
			if conf == nil {
				t.Fatal("nginx: no ConfigMap mounted on /etc/nginx/conf.d")
			}
			checkNginxAuthRequest(t, []byte(conf.Data["default.conf"]), "http://keymint.keymint.svc:8080/v1/forward-auth")
			checkLoopbackApp(t, d)
			checkAdmitted(t, d, "http")
		},
	}
	for dir, check := range cases {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			b := build(t, filepath.Join(kubeDir, dir))
			checkCommon(t, b)
			check(t, b)
		})
	}
	// Every kustomization is built above.
	for _, dir := range loadLayout(t).kustomizations {
		rel, _ := filepath.Rel(kubeDir, dir)
		if _, ok := cases[filepath.ToSlash(rel)]; !ok {
			t.Errorf("%s: a kustomization TestKustomizeBuilds does not build", dir)
		}
	}
}

// keymintPolicy is the base's NetworkPolicy, built once.
var keymintPolicy = sync.OnceValues(func() (*networkingv1.NetworkPolicy, error) {
	m, err := kustomize(filepath.Join(kubeDir, "base"))
	if err != nil {
		return nil, err
	}
	for _, r := range m.Resources() {
		if r.GetKind() != "NetworkPolicy" {
			continue
		}
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		o, err := decodeObject(y, false)
		if err != nil {
			return nil, err
		}
		return o.obj.(*networkingv1.NetworkPolicy), nil
	}
	return nil, fmt.Errorf("base: no NetworkPolicy")
})

// checkNetworkPolicy checks the base's NetworkPolicy: it selects keymint's
// server pods and admits only chosen peers, gRPC only from labelled
// clients, HTTP from those and the ingress namespace.
func checkNetworkPolicy(t *testing.T, b *built, d *appsv1.Deployment) {
	t.Helper()
	pols := all[networkingv1.NetworkPolicy](b)
	if len(pols) != 1 {
		t.Fatalf("%s: %d NetworkPolicies, want 1", b.dir, len(pols))
	}
	p := pols[0]
	if !selects(p.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) || len(p.Spec.PodSelector.MatchExpressions) > 0 {
		t.Errorf("%s: NetworkPolicy %s does not select keymint's pods", b.dir, p.Name)
	}
	if !slices.Equal(p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("%s: NetworkPolicy policyTypes %v, want [Ingress]", b.dir, p.Spec.PolicyTypes)
	}
	byPort := map[string][]networkingv1.NetworkPolicyPeer{}
	for _, r := range p.Spec.Ingress {
		if len(r.Ports) == 0 || len(r.From) == 0 {
			t.Errorf("%s: NetworkPolicy rule %+v opens every port or to everyone", b.dir, r)
		}
		for _, port := range r.Ports {
			if port.Port == nil || port.Port.StrVal == "" || port.Protocol == nil || *port.Protocol != corev1.ProtocolTCP {
				t.Errorf("%s: NetworkPolicy port %+v, want a named TCP port", b.dir, port)
				continue
			}
			byPort[port.Port.StrVal] = append(byPort[port.Port.StrVal], r.From...)
		}
	}
	for name, peers := range byPort {
		if containerPort(container(t, d, "keymint"), name) == 0 {
			t.Errorf("%s: NetworkPolicy names port %s, which keymint does not have", b.dir, name)
		}
		for _, peer := range peers {
			if peer.IPBlock != nil {
				t.Errorf("%s: NetworkPolicy port %s: an ipBlock peer", b.dir, name)
			}
			ns, pod := peer.NamespaceSelector, peer.PodSelector
			if (ns == nil || len(ns.MatchLabels) == 0) && (pod == nil || len(pod.MatchLabels) == 0) {
				t.Errorf("%s: NetworkPolicy port %s admits an unlabelled peer %+v", b.dir, name, peer)
			}
			if name == "grpc" && !(pod != nil && pod.MatchLabels[clientLabel] == "true") && !(ns != nil && ns.MatchLabels[clientLabel] == "true") {
				t.Errorf("%s: NetworkPolicy grpc peer %+v is not a labelled client", b.dir, peer)
			}
		}
	}
	for _, want := range []string{"grpc", "http"} {
		if len(byPort[want]) == 0 {
			t.Errorf("%s: NetworkPolicy admits nobody to %s", b.dir, want)
		}
	}
	ingress := false
	for _, peer := range byPort["http"] {
		if ns := peer.NamespaceSelector; ns != nil && ns.MatchLabels["kubernetes.io/metadata.name"] != "" && peer.PodSelector == nil {
			ingress = true
		}
	}
	if !ingress {
		t.Errorf("%s: NetworkPolicy: the HTTP port must admit the ingress controller's namespace", b.dir)
	}
}

// clientLabel marks pods (or namespaces) keymint's NetworkPolicy admits.
const clientLabel = "keymint.io/client"

// checkAdmitted checks that an example's pods, in another namespace, reach
// keymint's port through the base's NetworkPolicy.
func checkAdmitted(t *testing.T, d *appsv1.Deployment, port string) {
	t.Helper()
	p, err := keymintPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Spec.Ingress {
		for _, pp := range r.Ports {
			if pp.Port == nil || pp.Port.StrVal != port {
				continue
			}
			for _, peer := range r.From {
				nsAny := peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0
				if nsAny && peer.PodSelector != nil && selects(peer.PodSelector.MatchLabels, d.Spec.Template.Labels) {
					return
				}
			}
		}
	}
	t.Errorf("Deployment %s: its pods may not reach keymint's %s port (label them %s: \"true\")", d.Name, port, clientLabel)
}

// checkLoopbackApp checks that an example's app container is reachable only
// through its proxy: it listens on loopback and publishes no port.
func checkLoopbackApp(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	app := container(t, d, "app")
	if len(app.Ports) > 0 || !slices.ContainsFunc(app.Args, func(a string) bool { return strings.HasPrefix(a, "-listen=127.0.0.1:") }) {
		t.Errorf("%s: the app must listen on 127.0.0.1 only and publish no port", d.Name)
	}
}

func checkEnvoyExample(t *testing.T, b *built) {
	d := one[appsv1.Deployment](t, b, "resource-service")
	if n := len(d.Spec.Template.Spec.Containers); n != 3 {
		t.Errorf("resource-service has %d containers, want app, envoy, keymint-sidecar", n)
	}
	checkLoopbackApp(t, d)
	mounted := func(c *corev1.Container, dir string) *corev1.ConfigMap {
		for _, m := range c.VolumeMounts {
			if m.MountPath != dir {
				continue
			}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					return one[corev1.ConfigMap](t, b, v.ConfigMap.Name)
				}
			}
		}
		t.Fatalf("container %s: no ConfigMap mounted on %s", c.Name, dir)
		return nil
	}

	e := container(t, d, "envoy")
	if !regexp.MustCompile(`^envoyproxy/envoy:v1\.\d+\.\d+(@sha256:[0-9a-f]{64})?$|^envoyproxy/envoy@sha256:[0-9a-f]{64}$`).MatchString(e.Image) {
		t.Errorf("envoy image %q: pin an exact release (v1.X.Y) or a digest", e.Image)
	}
	i := slices.Index(e.Args, "--config-path")
	if i < 0 || i+1 >= len(e.Args) || e.Args[i+1] != "/etc/envoy/envoy.yaml" {
		t.Errorf("envoy args %q: want --config-path /etc/envoy/envoy.yaml", e.Args)
	}
	envoyCM := mounted(e, "/etc/envoy")
	authzAddr, listenPort := checkEnvoyConfig(t, []byte(envoyCM.Data["envoy.yaml"]))
	if containerPort(e, "http") != listenPort {
		t.Errorf("envoy container port http %d, listener %d", containerPort(e, "http"), listenPort)
	}

	s := container(t, d, "keymint-sidecar")
	if !slices.Equal(s.Args, []string{"sidecar"}) {
		t.Errorf("keymint-sidecar args %q, want [sidecar]", s.Args)
	}
	want := map[string]string{
		"KEYMINT_SIDECAR_GRPC_ADDR": authzAddr,
		"KEYMINT_SIDECAR_HTTP_ADDR": "127.0.0.1:9192",
		"KEYMINT_CENTRAL_ADDR":      "keymint.keymint.svc:9090",
		"KEYMINT_ROUTES_FILE":       "/etc/keymint/routes.yaml",
	}
	for k, v := range want {
		if ev := env(s, k); ev == nil || ev.Value != v {
			t.Errorf("keymint-sidecar: %s=%v, want %q", k, ev, v)
		}
	}
	if authzAddr != "127.0.0.1:9191" {
		t.Errorf("envoy ext_authz goes to %s, want the sidecar on 127.0.0.1:9191", authzAddr)
	}
	if len(s.Ports) > 0 {
		t.Error("keymint-sidecar publishes a port: it serves the pod's loopback only")
	}
	routes := mounted(s, "/etc/keymint")
	if _, ok := routes.Data["routes.yaml"]; !ok {
		t.Error("the routes ConfigMap has no routes.yaml")
	}
	checkSidecarRoutes(t, []byte(routes.Data["routes.yaml"]))

	svc := one[corev1.Service](t, b, "resource-service")
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.StrVal != "http" {
			t.Errorf("Service resource-service port %s bypasses envoy", p.Name)
		}
	}
}
