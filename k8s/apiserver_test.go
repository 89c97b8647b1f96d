package k8s_test

// The chart against a real kube-apiserver (k8s/internal/kubeenv): every
// object the chart renders, for every value set, is sent to the server as a
// server-side dry-run apply with strict field validation, so the server's
// own schema, defaulting, validation and admission judge it. (helm install
// --dry-run=server would not send the objects to the server at all.) The
// CRDs the chart may render (ServiceMonitor, HTTPRoute) are really
// installed first, from their projects' modules in the Go module cache.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/liqstream/liqstream/k8s/chart"
	"github.com/liqstream/liqstream/k8s/internal/kubeenv"
)

const (
	chartDir     = "liqstream"
	release      = "liqstream"
	namespace    = "liqstream"
	fieldManager = "liqstream-chart-test"
)

// The CRDs of the optional ServiceMonitor and HTTPRoute, read from these
// modules in the Go module cache (downloaded through the module proxy when
// missing). An empty version is the one this module's go.mod requires.
// v0.85.0 is the newest main prometheus-operator module the proxy serves
// (go.mod has only its pkg/apis/monitoring submodule, without CRD files);
// ServiceMonitor monitoring.coreos.com/v1 is stable across releases.
var crds = []struct{ module, version, file string }{
	{"sigs.k8s.io/gateway-api", "", "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"},
	{"github.com/prometheus-operator/prometheus-operator", "v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"},
}

// features turns on every optional template, so each one meets the server.
var features = map[string]any{
	"ingress": map[string]any{
		"enabled":   true,
		"className": "nginx",
		"tls":       []any{map[string]any{"secretName": "liqstream-tls", "hosts": []any{"liqstream.example.com"}}},
	},
	"httpRoute": map[string]any{
		"enabled":    true,
		"parentRefs": []any{map[string]any{"name": "public", "namespace": "gateway-system"}},
	},
	"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
	"canary":         map[string]any{"enabled": true, "weight": 5},
	"edge":           map[string]any{"metrics": map[string]any{"enabled": true}},
	"networkPolicy": map[string]any{"metricsScraper": map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}},
	}},
}

type apiServer struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func TestAPIServer(t *testing.T) {
	cluster := kubeenv.Start(t)
	ctx := t.Context()

	disco, err := discovery.NewDiscoveryClientForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := &apiServer{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}

	t.Run("version", func(t *testing.T) {
		v, err := disco.ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		major, minor, _ := strings.Cut(strings.TrimPrefix(cluster.Version, "v"), ".")
		minor, _, _ = strings.Cut(minor, ".")
		if v.GitVersion != cluster.Version || v.Major != major || v.Minor != minor {
			t.Fatalf("server reports %s (major %q, minor %q); built and stamped %s", v.GitVersion, v.Major, v.Minor, cluster.Version)
		}
		// What Helm checks against a real cluster before installing.
		b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			KubeVersion string `json:"kubeVersion"`
		}
		if err := yaml.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.KubeVersion != "" && !chartutil.IsCompatibleRange(meta.KubeVersion, v.GitVersion) {
			t.Errorf("Chart.yaml kubeVersion %q excludes the server's %s", meta.KubeVersion, v.GitVersion)
		}
	})

	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace},
	}}
	if err := s.apply(ctx, ns, "", false); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	s.installCRDs(t)

	// Every rendered object of every value set must be accepted.
	sets := []struct {
		name  string
		files []string
		set   map[string]any
	}{
		{"default", nil, nil},
		{"staging", []string{"values-staging.yaml"}, nil},
		{"production", []string{"values-production.yaml"}, nil},
		{"default+features", nil, features},
		{"staging+features", []string{"values-staging.yaml"}, features},
		{"production+features", []string{"values-production.yaml"}, features},
	}
	rendered := map[string]bool{} // template files that produced an object
	for _, vs := range sets {
		t.Run("accepts/"+vs.name, func(t *testing.T) {
			ms := render(t, vs.files, vs.set)
			kinds := map[string]int{}
			for _, m := range ms {
				rendered[m.Source] = true
				kinds[m.Kind]++
				if err := s.dryRun(ctx, m); err != nil {
					t.Errorf("%s %s/%s (%s): the server rejected it: %v", vs.name, m.Kind, m.Name, m.Source, err)
				}
			}
			t.Logf("%d objects accepted: %v", len(ms), kinds)
			if vs.set != nil {
				for _, k := range []string{"Ingress", "HTTPRoute", "ServiceMonitor", "HorizontalPodAutoscaler", "Deployment", "StatefulSet"} {
					if kinds[k] == 0 {
						t.Errorf("%s rendered no %s", vs.name, k)
					}
				}
			}
		})
	}
	t.Run("dry run stored nothing", func(t *testing.T) {
		deps := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		list, err := dyn.Resource(deps).Namespace(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(list.Items); n != 0 {
			t.Errorf("%d Deployments stored in %s; a dry run stores none", n, namespace)
		}
	})
	// The harness itself: a field the schema lacks (a template typo) is a
	// rejection (server-side apply builds a typed object; strict field
	// validation also refuses duplicate fields), not a silent drop.
	t.Run("rejects/unknown field", func(t *testing.T) {
		m := chart.Manifest{Source: "test", APIVersion: "v1", Kind: "ConfigMap", Name: "typo", YAML: []byte(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\nspec:\n  replicas: 1\n")}
		err := s.dryRun(ctx, m)
		if err == nil || !strings.Contains(err.Error(), ".spec: field not declared in schema") {
			t.Fatalf("want the server to reject the unknown field .spec, got %v", err)
		}
		t.Logf("server: %v", err)
	})
	t.Run("every template sent", func(t *testing.T) {
		tmpls, err := filepath.Glob(filepath.Join(chartDir, "templates", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tmpls {
			src := filepath.ToSlash(filepath.Join("liqstream", "templates", filepath.Base(f)))
			if !rendered[src] {
				t.Errorf("%s rendered no object in any value set: nothing checked it against the server", src)
			}
		}
	})

	// Value sets the chart renders but the server must refuse, with its own
	// message naming the field.
	broken := []struct {
		name    string
		set     map[string]any
		kind    string   // the object that must be rejected (all others pass):
		object  string   // its kind and name as rendered
		wantMsg []string // in the server's message
	}{
		{
			name:    "hpa minReplicas 0",
			set:     map[string]any{"gateway": map[string]any{"autoscaling": map[string]any{"minReplicas": 0}}},
			kind:    "HorizontalPodAutoscaler",
			object:  release + "-gateway",
			wantMsg: []string{"spec.minReplicas", "must be greater than or equal to 1"},
		},
		{
			name: "pod label breaks the gateway selector",
			set: map[string]any{"gateway": map[string]any{"podLabels": map[string]any{
				"app.kubernetes.io/component": "not-the-gateway",
			}}},
			kind:    "Deployment",
			object:  release + "-gateway",
			wantMsg: []string{"spec.template.metadata.labels", "`selector` does not match template `labels`"},
		},
	}
	for _, b := range broken {
		t.Run("rejects/"+b.name, func(t *testing.T) {
			ms := render(t, nil, b.set)
			rejected := 0
			for _, m := range ms {
				err := s.dryRun(ctx, m)
				target := m.Kind == b.kind && m.Name == b.object
				switch {
				case err == nil && target:
					t.Errorf("%s %s was accepted; want the server to reject it", m.Kind, m.Name)
				case err == nil:
				case !target:
					t.Errorf("%s %s: unexpected rejection: %v", m.Kind, m.Name, err)
				case !apierrors.IsInvalid(err):
					t.Errorf("%s %s: want the server's Invalid, got %v", m.Kind, m.Name, err)
				default:
					rejected++
					for _, w := range b.wantMsg {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%s %s: server message %q lacks %q", m.Kind, m.Name, err, w)
						}
					}
					t.Logf("server: %v", err)
				}
			}
			if rejected != 1 {
				t.Errorf("%s %s: rendered %d times and rejected %d times; want once", b.kind, b.object, countObj(ms, b.kind, b.object), rejected)
			}
		})
	}
}

func render(t *testing.T, files []string, set map[string]any) []chart.Manifest {
	t.Helper()
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(chartDir, f)
	}
	ms, err := chart.Render(chartDir, release, namespace, paths, set)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("rendered nothing")
	}
	return ms
}

// dryRun sends one rendered document, as rendered, as a server-side apply
// with dryRun=All and strict field validation.
func (s *apiServer) dryRun(ctx context.Context, m chart.Manifest) error {
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(m.YAML, &obj.Object); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	return s.applyBytes(ctx, &obj, m.YAML, namespace, true)
}

func (s *apiServer) apply(ctx context.Context, obj *unstructured.Unstructured, ns string, dryRun bool) error {
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	return s.applyBytes(ctx, obj, data, ns, dryRun)
}

func (s *apiServer) applyBytes(ctx context.Context, obj *unstructured.Unstructured, data []byte, ns string, dryRun bool) error {
	gvk := obj.GroupVersionKind()
	mapping, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the server serves no %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = s.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() != "" {
			ns = obj.GetNamespace()
		}
		ri = s.dyn.Resource(mapping.Resource).Namespace(ns)
	}
	opts := metav1.PatchOptions{FieldManager: fieldManager, Force: ptr(true), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
	return err
}

// installCRDs really applies the CRDs and waits until each is Established
// and served.
func (s *apiServer) installCRDs(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	crdRes := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var names []string
	var served []schema.GroupVersionKind
	for _, c := range crds {
		dir := moduleDir(t, c.module, c.version)
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(c.file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(data, []byte("\n---")) {
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
				t.Fatalf("%s/%s: %v", dir, c.file, err)
			}
			if obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if err := s.apply(ctx, &obj, "", false); err != nil {
				t.Fatalf("install CRD %s from %s: %v", obj.GetName(), dir, err)
			}
			names = append(names, obj.GetName())
			group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
			versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
			for _, v := range versions {
				if vm, ok := v.(map[string]any); ok && vm["served"] == true {
					served = append(served, schema.GroupVersionKind{Group: group, Version: vm["name"].(string), Kind: kind})
				}
			}
		}
	}
	if len(names) != len(crds) {
		t.Fatalf("found CRDs %v in %d files; want one per file", names, len(crds))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for {
			crd, err := s.dyn.Resource(crdRes).Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not Established after 30s (%v): %v", name, err, crd)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Discovery lags Established a little: wait until every version is mapped.
	for _, gvk := range served {
		for {
			s.mapper.Reset()
			if _, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("%s not in discovery after 30s: %v", gvk, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sort.Strings(names)
	t.Logf("CRDs established: %v", names)
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	return slices.ContainsFunc(conds, func(c any) bool {
		m, ok := c.(map[string]any)
		return ok && m["type"] == "Established" && m["status"] == "True"
	})
}

// moduleDir returns module@version's directory in the module cache,
// downloading it through the module proxy when it is not there yet. An empty
// version is the one go.mod requires.
func moduleDir(t *testing.T, module, version string) string {
	t.Helper()
	if version == "" {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module)
		cmd.Env = append(os.Environ(), "GOWORK=off")
		out, err := cmd.Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			t.Fatalf("go list -m %s (the version go.mod requires): %v %s", module, err, out)
		}
		version = string(bytes.TrimSpace(out))
	}
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = t.TempDir() // outside any module: nothing's go.mod changes
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || err != nil || info.Error != "" || info.Dir == "" {
		t.Fatalf("go mod download %s@%s: %v %s\n%s", module, version, err, info.Error, out)
	}
	return info.Dir
}

func countObj(ms []chart.Manifest, kind, name string) int {
	n := 0
	for _, m := range ms {
		if m.Kind == kind && m.Name == name {
			n++
		}
	}
	return n
}

func ptr[T any](v T) *T { return &v }
