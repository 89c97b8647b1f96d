package kubeenv

import (
	"path/filepath"
	"testing"
)

// The version stamped into kube-apiserver is the tools module's
// k8s.io/kubernetes; the servers themselves are exercised by the chart test
// (k8s/apiserver_test.go), which starts the module's one API server.
func TestToolsModuleVersion(t *testing.T) {
	dir, err := toolsModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	v, err := requiredVersion(filepath.Join(dir, "go.mod"), kubernetesModule)
	if err != nil {
		t.Fatal(err)
	}
	major, minor, ok := majorMinor(v)
	if !ok || major != "1" || minor == "" {
		t.Fatalf("%s %s: major %q minor %q", kubernetesModule, v, major, minor)
	}
	t.Logf("kube-apiserver %s (major %s, minor %s) from %s", v, major, minor, dir)
}
