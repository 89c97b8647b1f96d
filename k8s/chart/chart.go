// Package chart renders and lints a Helm chart offline with Helm's Go SDK, the
// way `helm template` and `helm lint` do, so tests can check the manifests
// without a cluster or the helm binary.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// Manifest is one rendered document.
type Manifest struct {
	// Source is the template it came from, as in the "# Source:" comment
	// (e.g. "liqstream/templates/gateway-deployment.yaml").
	Source string
	// APIVersion, Kind and Name are read from the document itself.
	APIVersion, Kind, Name string
	// YAML is the document without the "# Source:" comment.
	YAML []byte
}

// Render renders the chart like `helm template`: release name, namespace,
// value files (paths), and extra values merged last (like --set, nested maps).
// A template's `fail`, a schema violation or a YAML error is returned as an
// error. Documents come in Helm's install order (hooks last); empty
// documents are left out.
func Render(chartDir, release, namespace string, valueFiles []string, set map[string]any) ([]Manifest, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	vals, err := mergedValues(valueFiles, set)
	if err != nil {
		return nil, err
	}

	cfg := &action.Configuration{Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true // no cluster: default capabilities, fake client
	install.Replace = true
	install.ReleaseName = release
	install.Namespace = namespace
	install.IncludeCRDs = true
	install.DisableHooks = false
	install.KubeVersion = KubeVersion()
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", chartDir, err)
	}

	var out []Manifest
	add := func(source, doc string) error {
		if strings.TrimSpace(doc) == "" {
			return nil
		}
		m, err := parse(source, doc)
		if err != nil {
			return err
		}
		if m != nil {
			out = append(out, *m)
		}
		return nil
	}
	for _, doc := range splitDocs(rel.Manifest) {
		if err := add("", doc); err != nil {
			return nil, err
		}
	}
	for _, h := range rel.Hooks {
		for _, doc := range splitDocs(h.Manifest) {
			if err := add(h.Path, doc); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Lint runs helm lint (the SDK's action.Lint) with those value files and
// returns its messages, each as "[SEVERITY] path: message" (INFO, WARNING or
// ERROR), like the helm CLI prints them. An error means the chart could not
// be linted at all.
func Lint(chartDir string, valueFiles []string) ([]string, error) {
	vals, err := mergedValues(valueFiles, nil)
	if err != nil {
		return nil, err
	}
	l := action.NewLint()
	l.Namespace = "default"
	l.KubeVersion = KubeVersion()
	res := l.Run([]string{chartDir}, vals)
	msgs := make([]string, 0, len(res.Messages))
	for _, m := range res.Messages {
		msgs = append(msgs, m.Error())
	}
	if res.TotalChartsLinted == 0 && len(res.Errors) > 0 {
		return msgs, fmt.Errorf("lint %s: %w", chartDir, errors.Join(res.Errors...))
	}
	// Errors also carry every ERROR message; report the ones that are not.
	for _, e := range res.Errors {
		seen := false
		for _, m := range res.Messages {
			if m.Severity == support.ErrorSev && errors.Is(m.Err, e) {
				seen = true
			}
		}
		if !seen {
			msgs = append(msgs, "[ERROR] "+e.Error())
		}
	}
	return msgs, nil
}

// mergedValues reads the value files in order, like -f, and merges set over
// them, like --set.
func mergedValues(valueFiles []string, set map[string]any) (map[string]any, error) {
	opts := values.Options{ValueFiles: valueFiles}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return nil, fmt.Errorf("read values: %w", err)
	}
	if set != nil {
		// Round-trip through YAML so the values are the types a value file
		// would give (ints become float64/int64 as Helm sees them).
		b, err := yaml.Marshal(set)
		if err != nil {
			return nil, fmt.Errorf("set values: %w", err)
		}
		var norm map[string]any
		if err := yaml.Unmarshal(b, &norm); err != nil {
			return nil, fmt.Errorf("set values: %w", err)
		}
		vals = mergeMaps(vals, norm)
	}
	return vals, nil
}

// mergeMaps merges b over a: nested maps merge key by key, anything else in b
// replaces what a holds.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// splitDocs splits a multi-document manifest in document order.
func splitDocs(manifest string) []string {
	m := releaseutil.SplitManifests(manifest) // keys "manifest-N"
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return docIndex(keys[i]) < docIndex(keys[j]) })
	docs := make([]string, 0, len(keys))
	for _, k := range keys {
		docs = append(docs, m[k])
	}
	return docs
}

func docIndex(key string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "manifest-"))
	return n
}

// parse reads the Source comment and the object's identity; a document that
// is only comments gives nil.
func parse(source, doc string) (*Manifest, error) {
	var body bytes.Buffer
	for _, line := range strings.SplitAfter(doc, "\n") {
		if s, ok := strings.CutPrefix(line, "# Source: "); ok && body.Len() == 0 {
			source = strings.TrimSpace(s)
			continue
		}
		body.WriteString(line)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(body.Bytes(), &meta); err != nil {
		return nil, fmt.Errorf("%s: not YAML: %w", source, err)
	}
	if meta.APIVersion == "" && meta.Kind == "" {
		if isBlank(body.Bytes()) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: document has no apiVersion and kind", source)
	}
	return &Manifest{Source: source, APIVersion: meta.APIVersion, Kind: meta.Kind, Name: meta.Metadata.Name, YAML: body.Bytes()}, nil
}

// isBlank reports whether a document holds only comments and whitespace.
func isBlank(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// fallbackKubeVersion is used when the build has no k8s.io/client-go module
// version to derive one from.
const fallbackKubeVersion = "v1.34.0"

// KubeVersion is the Kubernetes version charts are rendered and linted
// against: the one this module's k8s.io/client-go (v0.X.Y) matches, v1.X.Y,
// as the helm binary gets it at build time. The SDK's own default (v1.20)
// is older than any chart needing lifecycle sleep hooks accepts.
func KubeVersion() *chartutil.KubeVersion {
	v := fallbackKubeVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/client-go" && strings.HasPrefix(d.Version, "v0.") {
				v = "v1." + strings.TrimPrefix(d.Version, "v0.")
			}
		}
	}
	kv, err := chartutil.ParseKubeVersion(v)
	if err != nil {
		kv, _ = chartutil.ParseKubeVersion(fallbackKubeVersion)
	}
	return kv
}
