package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeChart writes a one-template chart into a temp dir.
func writeChart(t *testing.T, values, tmpl string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Chart.yaml":            "apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: \"1.0\"\n",
		"values.yaml":           values,
		"templates/object.yaml": tmpl,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const cmTemplate = `{{- if .Values.boom }}{{ fail "boom is set" }}{{ end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
  namespace: {{ .Release.Namespace }}
data:
  a: {{ .Values.nested.a | quote }}
  b: {{ .Values.nested.b | quote }}
---
# only a comment
`

func TestRenderValuesAndIdentity(t *testing.T) {
	dir := writeChart(t, "boom: false\nnested:\n  a: from-values\n  b: from-values\n", cmTemplate)
	file := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(file, []byte("nested:\n  a: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := Render(dir, "rel", "ns", []string{file}, map[string]any{"nested": map[string]any{"b": "from-set"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d manifests, want 1 (the comment-only document is dropped): %+v", len(ms), ms)
	}
	m := ms[0]
	if m.Source != "tiny/templates/object.yaml" || m.APIVersion != "v1" || m.Kind != "ConfigMap" || m.Name != "rel-cm" {
		t.Errorf("identity %q %q %q %q", m.Source, m.APIVersion, m.Kind, m.Name)
	}
	y := string(m.YAML)
	for _, want := range []string{`a: "from-file"`, `b: "from-set"`, "namespace: ns"} {
		if !strings.Contains(y, want) {
			t.Errorf("rendered YAML lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, "# Source:") {
		t.Errorf("the Source comment was kept:\n%s", y)
	}
}

func TestRenderFailIsAnError(t *testing.T) {
	dir := writeChart(t, "boom: true\nnested: {a: x, b: y}\n", cmTemplate)
	_, err := Render(dir, "rel", "ns", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "boom is set") {
		t.Fatalf("want the template's fail message, got %v", err)
	}
	if _, err := Render(filepath.Join(dir, "missing"), "rel", "ns", nil, nil); err == nil {
		t.Error("a missing chart rendered")
	}
	if _, err := Render(dir, "rel", "ns", []string{filepath.Join(dir, "missing.yaml")}, nil); err == nil {
		t.Error("a missing value file rendered")
	}
}

func TestLintReportsTemplateErrors(t *testing.T) {
	dir := writeChart(t, "nested: {a: x, b: y}\n", "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: {{ .Values.nested.a | nosuchfunc }}\n")
	msgs, err := Lint(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		found = found || (strings.HasPrefix(m, "[ERROR]") && strings.Contains(m, "nosuchfunc"))
	}
	if !found {
		t.Errorf("lint messages %q lack the template's error", msgs)
	}
}
