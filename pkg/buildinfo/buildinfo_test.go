package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStampAndFallback(t *testing.T) {
	oldV, oldR := Version, Revision
	t.Cleanup(func() { Version, Revision = oldV, oldR })

	tests := []struct {
		name, version, revision string
		want                    string
	}{
		{"stamped", "v1.2.3", "abc123", "svc v1.2.3 (abc123, " + runtime.Version() + ")"},
		{"unstamped revision falls back", "dev", "", "svc dev ("},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Version, Revision = tc.version, tc.revision
			got := String("svc")
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("String = %q, want prefix %q", got, tc.want)
			}
			if Rev() == "" {
				t.Fatal("Rev is empty; want the VCS revision or \"unknown\"")
			}
		})
	}
}

func TestCollector(t *testing.T) {
	oldV, oldR := Version, Revision
	t.Cleanup(func() { Version, Revision = oldV, oldR })
	Version, Revision = "v9.9.9", "deadbeef"

	r := prometheus.NewRegistry()
	r.MustRegister(Collector("gateway"))
	want := `
# HELP build_info Always 1; the labels tell the service, its version, VCS revision and Go version.
# TYPE build_info gauge
build_info{goversion="` + runtime.Version() + `",revision="deadbeef",service="gateway",version="v9.9.9"} 1
`
	if err := testutil.GatherAndCompare(r, strings.NewReader(want), "build_info"); err != nil {
		t.Fatal(err)
	}
}
