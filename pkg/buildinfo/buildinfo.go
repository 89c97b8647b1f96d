// Package buildinfo is the version a binary was built as. The build stamps it:
//
//	go build -ldflags "-X github.com/liqstream/liqstream/pkg/buildinfo.Version=v1.2.3 \
//	    -X github.com/liqstream/liqstream/pkg/buildinfo.Revision=<git commit>"
//
// (the Makefile's LDFLAGS and the Dockerfiles in deploy/docker do). An
// unstamped binary says "dev" and takes its revision from the VCS stamp the go
// command embeds when it builds inside a git checkout, else "unknown".
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Set with -ldflags -X; see the package doc.
var (
	Version  = "dev"
	Revision = ""
)

var vcsRevision = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && dirty {
			rev += "-dirty"
		}
		return rev
	}
	return ""
})

// Rev is the stamped revision, else the go command's vcs.revision, else "unknown".
func Rev() string {
	if Revision != "" {
		return Revision
	}
	if r := vcsRevision(); r != "" {
		return r
	}
	return "unknown"
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

// String is "<name> <version> (<revision>, <goversion>)", what --version prints.
func String(name string) string {
	return name + " " + Version + " (" + Rev() + ", " + GoVersion() + ")"
}

// Collector is the gauge build_info{service,version,revision,goversion} = 1,
// for service's Prometheus registry.
func Collector(service string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "build_info",
		Help: "Always 1; the labels tell the service, its version, VCS revision and Go version.",
	}, []string{"service", "version", "revision", "goversion"})
	g.WithLabelValues(service, Version, Rev(), GoVersion()).Set(1)
	return g
}
