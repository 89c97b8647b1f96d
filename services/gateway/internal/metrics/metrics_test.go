package metrics

import (
	"testing"

	"github.com/liqstream/liqstream/pkg/buildinfo"
)

func TestBuildInfo(t *testing.T) {
	mfs, err := New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "build_info" {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("build_info has %d series, want 1", len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		want := map[string]string{"service": "gateway", "version": buildinfo.Version, "revision": buildinfo.Rev(), "goversion": buildinfo.GoVersion()}
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("build_info label %s = %q, want %q", k, labels[k], v)
			}
		}
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("build_info = %v, want 1", m.GetGauge().GetValue())
		}
		return
	}
	t.Fatal("the registry has no build_info")
}
