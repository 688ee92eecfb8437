package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// kubeDir holds every Kubernetes manifest; the tests run in deploy/.
const kubeDir = "kubernetes"

// secretName is the one Secret the manifests may reference: operators create
// it, git never holds it.
const secretName = "keymint-secrets"

// Strict decoding.

// newObject returns an empty typed object for apiVersion and kind, or nil for
// a kind these tests do not know (and so could not check).
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 Namespace":
		return &corev1.Namespace{}
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	}
	return nil
}

// strictUnmarshal decodes YAML into v the way the API server's strict field
// validation does: duplicate keys, unknown fields and wrongly cased field
// names are errors.
func strictUnmarshal(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	return strictUnmarshalJSON(j, v)
}

func strictUnmarshalJSON(j []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(j, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// header is the part of every object that says what it is.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// object is one decoded Kubernetes object.
type object struct {
	header
	obj any
}

// decodeObject decodes one YAML document strictly into its typed object.
// A strategic-merge patch may carry $patch-style directives, which are no
// fields of the type: they are checked and removed first, and the rest of
// the patch must still decode strictly.
func decodeObject(doc []byte, patch bool) (object, error) {
	var o object
	if err := yaml.Unmarshal(doc, &o.header); err != nil {
		return o, err
	}
	if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
		return o, errors.New("apiVersion, kind and metadata.name are required")
	}
	o.obj = newObject(o.APIVersion, o.Kind)
	if o.obj == nil {
		return o, fmt.Errorf("%s %s: unknown kind: teach newObject about it so it is checked", o.APIVersion, o.Kind)
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return o, err
	}
	if patch {
		var m any
		if err := json.Unmarshal(j, &m); err != nil {
			return o, err
		}
		if err := stripPatchDirectives(m); err != nil {
			return o, err
		}
		if j, err = json.Marshal(m); err != nil {
			return o, err
		}
	}
	if err := strictUnmarshalJSON(j, o.obj); err != nil {
		return o, fmt.Errorf("%s %s/%s: %w", o.APIVersion, o.Kind, o.Metadata.Name, err)
	}
	return o, nil
}

// stripPatchDirectives removes strategic-merge directives from a decoded
// patch, refusing ones that are misspelled.
func stripPatchDirectives(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			switch {
			case k == "$patch":
				if s, _ := val.(string); s != "delete" && s != "replace" && s != "merge" {
					return fmt.Errorf("$patch: %v is not delete, replace or merge", val)
				}
				delete(v, k)
			case k == "$retainKeys", strings.HasPrefix(k, "$setElementOrder/"), strings.HasPrefix(k, "$deleteFromPrimitiveList/"):
				delete(v, k)
			case strings.HasPrefix(k, "$"):
				return fmt.Errorf("unknown patch directive %q", k)
			default:
				if err := stripPatchDirectives(val); err != nil {
					return fmt.Errorf("%s.%w", k, err)
				}
			}
		}
	case []any:
		for _, e := range v {
			if err := stripPatchDirectives(e); err != nil {
				return err
			}
		}
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitDocs splits a multi-document YAML file, dropping empty documents.
func splitDocs(data []byte) ([][]byte, error) {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(data), -1) {
		j, err := yaml.YAMLToJSON([]byte(d))
		if err != nil {
			return nil, err
		}
		if string(j) != "null" {
			docs = append(docs, []byte(d))
		}
	}
	return docs, nil
}

// The files under kubernetes/.

// layout is what the kustomization files say about the tree.
type layout struct {
	kustomizations []string        // directories
	resources      map[string]bool // files listed under resources:
	patches        map[string]bool // files listed under patches:
	data           map[string]bool // files ConfigMaps are generated from
}

// uncheckedFields are kustomize features whose input or output these tests
// do not look at (or that are deprecated): using one fails until the tests
// learn it.
var uncheckedFields = []string{
	"bases", "components", "crds", "patchesStrategicMerge", "patchesJson6902", "commonLabels", "vars",
	"secretGenerator", // no secrets in git
	"helmCharts", "helmChartInflationGenerator", "helmGlobals", "generators", "transformers", "validators",
	"configurations", "openapi", "imageTags",
}

// unchecked returns the uncheckedFields a kustomization file uses.
func unchecked(raw map[string]any) []string {
	var used []string
	for _, f := range uncheckedFields {
		if _, ok := raw[f]; ok {
			used = append(used, f)
		}
	}
	return used
}

func loadLayout(t *testing.T) *layout {
	t.Helper()
	l := &layout{resources: map[string]bool{}, patches: map[string]bool{}, data: map[string]bool{}}
	err := filepath.WalkDir(kubeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch d.Name() {
		case "kustomization.yml", "Kustomization":
			t.Errorf("%s: name it kustomization.yaml", path)
		case "kustomization.yaml":
			l.kustomizations = append(l.kustomizations, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range l.kustomizations {
		path := filepath.Join(dir, "kustomization.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var k types.Kustomization
		if err := strictUnmarshal(data, &k); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		var raw map[string]any
		if err := yaml.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
			t.Errorf("%s: apiVersion/kind %q/%q, want kustomize.config.k8s.io/v1beta1/Kustomization", path, k.APIVersion, k.Kind)
		}
		if used := unchecked(raw); len(used) > 0 {
			t.Errorf("%s uses %s, which these tests do not check: teach them first", path, strings.Join(used, ", "))
		}
		for _, r := range k.Resources {
			if strings.Contains(r, "://") || strings.HasPrefix(r, "github.com/") || strings.Contains(r, "?ref=") {
				t.Errorf("%s: remote resource %q: everything must build offline from this repository", path, r)
				continue
			}
			p := filepath.Join(dir, r)
			fi, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: resource %s: %v", path, r, err)
				continue
			}
			if !fi.IsDir() {
				l.resources[p] = true
			}
		}
		for i, p := range k.Patches {
			if p.Path != "" {
				l.patches[filepath.Join(dir, p.Path)] = true
			}
			if p.Patch != "" {
				if _, err := decodeObject([]byte(p.Patch), true); err != nil {
					t.Errorf("%s: patches[%d]: %v", path, i, err)
				}
			}
		}
		for _, g := range k.ConfigMapGenerator {
			for _, src := range g.FileSources {
				if _, file, ok := strings.Cut(src, "="); ok {
					src = file
				}
				l.data[filepath.Join(dir, src)] = true
			}
			for _, src := range g.EnvSources {
				l.data[filepath.Join(dir, src)] = true
			}
		}
	}
	return l
}

// dataCheckers check the files ConfigMaps are generated from, by file name.
var dataCheckers = map[string]func(t *testing.T, data []byte){
	"envoy.yaml":  func(t *testing.T, data []byte) { checkEnvoyConfig(t, data) },
	"routes.yaml": checkSidecarRoutes,
	"default.conf": func(t *testing.T, data []byte) {
		checkNginxAuthRequest(t, data, "http://keymint.keymint.svc:8080/v1/forward-auth")
	},
}

// TestManifestFiles decodes every file under kubernetes/ strictly: each YAML
// document into the API type its apiVersion and kind name, each
// kustomization into kustomize's type, each patch (less its directives) into
// the type it patches, and each ConfigMap source file by its own checker. A
// file nothing references, or a kind nothing knows, is an error.
func TestManifestFiles(t *testing.T) {
	t.Parallel()
	l := loadLayout(t)
	if len(l.kustomizations) < 5 {
		t.Errorf("found %d kustomizations (%v), want base, 2 overlays, 2 examples", len(l.kustomizations), l.kustomizations)
	}
	for path := range l.data {
		if l.resources[path] || l.patches[path] {
			t.Errorf("%s is both a ConfigMap source and a resource or patch", path)
		}
	}
	checked := 0
	err := filepath.WalkDir(kubeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		switch {
		case l.data[path]:
			check := dataCheckers[d.Name()]
			if check == nil {
				t.Errorf("%s: a ConfigMap source with no checker in dataCheckers", path)
				return nil
			}
			t.Run(path, func(t *testing.T) { check(t, data) })
		case l.resources[path], l.patches[path]:
			docs, err := splitDocs(data)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				return nil
			}
			if len(docs) == 0 {
				t.Errorf("%s: no objects", path)
			}
			for i, doc := range docs {
				if _, err := decodeObject(doc, l.patches[path]); err != nil {
					t.Errorf("%s (document %d): %v", path, i+1, err)
				}
			}
		default:
			t.Errorf("%s: no kustomization.yaml references it, so nothing deploys or checks it", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Errorf("checked only %d files", checked)
	}
}

// TestStrictDecodingCatchesMistakes keeps the checker honest: the mistakes a
// hand-edited manifest makes must fail to decode.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	t.Parallel()
	const ok = `apiVersion: v1
kind: ConfigMap
metadata:
  name: x
data:
  a: b
`
	if _, err := decodeObject([]byte(ok), false); err != nil {
		t.Fatalf("valid ConfigMap: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown field":    ok + "extra: 1\n",
		"wrong case":       strings.Replace(ok, "data:", "Data:", 1),
		"duplicate key":    ok + "data:\n  c: d\n",
		"wrong type":       strings.Replace(ok, "  a: b", "  - a", 1),
		"unknown kind":     strings.Replace(ok, "ConfigMap", "ConfigMapp", 1),
		"misspelled patch": ok + "$pacth: delete\n",
	} {
		if _, err := decodeObject([]byte(doc), true); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	const deploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  template:
    spec:
      containers:
        - name: x
          securityContext:
            readOnlyRootFileSystem: true
`
	if _, err := decodeObject([]byte(deploy), false); err == nil {
		t.Error("misspelled readOnlyRootFilesystem decoded without error")
	}
}
