package testenv

import (
	"os"
	"path/filepath"
	"testing"

	pkgenv "github.com/liqstream/liqstream/pkg/testenv"
)

// Fleet is the split architecture: redis-server, one snapshotter, N gateways
// and nginx with ip_hash in front, all real, on free loopback ports.
type Fleet struct {
	Dir         string
	Redis       *pkgenv.Redis
	Snapshotter *Proc
	Gateways    []*Proc
	Nginx       *pkgenv.Nginx

	gatewayArgs []string
	spare       int // gateways StartSpare may still add
}

// FleetOptions shape StartFleetWith.
type FleetOptions struct {
	Gateways int
	// Spare gateways are started later by StartSpare, which then adds them
	// to nginx's upstreams (a reload), as a scale-out adds a pod the edge finds.
	Spare           int
	GatewayArgs     []string
	SnapshotterArgs []string
}

// StartFleet starts the whole fleet with n gateways; nginx renders the
// project's own deploy/nginx/nginx.conf.tmpl.
func StartFleet(t testing.TB, n int, snapArgs ...string) *Fleet {
	t.Helper()
	return StartFleetWith(t, FleetOptions{Gateways: n, SnapshotterArgs: snapArgs})
}

// StartFleetWith starts the fleet o describes.
func StartFleetWith(t testing.TB, o FleetOptions) *Fleet {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join(RepoRoot(), "deploy", "nginx", "nginx.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	f := &Fleet{Dir: t.TempDir(), gatewayArgs: o.GatewayArgs}
	f.Redis = pkgenv.StartRedis(t)
	f.Snapshotter = Start(t, "snapshotter", f.Dir, append([]string{
		"--listen=127.0.0.1:0", "--db=" + filepath.Join(f.Dir, "liqstream.duckdb"), "--redis_url=" + f.Redis.URL,
	}, o.SnapshotterArgs...)...)
	var ups []string
	for i := 0; i < o.Gateways; i++ {
		g := f.StartGateway(t)
		f.Gateways = append(f.Gateways, g)
		ups = append(ups, g.Addr)
	}
	f.spare = o.Spare
	f.Nginx = pkgenv.StartNginx(t, string(tmpl), ups)
	return f
}

// StartGateway starts one more gateway wired to the fleet's Redis and snapshotter.
func (f *Fleet) StartGateway(t testing.TB, extra ...string) *Proc {
	t.Helper()
	args := []string{
		"--listen=127.0.0.1:0", "--snapshotter_url=http://" + f.Snapshotter.Addr, "--redis_url=" + f.Redis.URL,
		"--ws.trusted_proxies=127.0.0.0/8", "--log_level=debug",
	}
	args = append(append(args, f.gatewayArgs...), extra...)
	return Start(t, "gateway", f.Dir, args...)
}

// StartSpare starts one more gateway and reloads nginx with it among the
// upstreams: the scale-out. Clients already connected stay where they are.
func (f *Fleet) StartSpare(t testing.TB) *Proc {
	t.Helper()
	if f.spare == 0 {
		t.Fatal("StartSpare: no spare gateway left (FleetOptions.Spare)")
	}
	f.spare--
	g := f.StartGateway(t)
	f.Gateways = append(f.Gateways, g)
	var ups []string
	for _, g := range f.Gateways {
		ups = append(ups, g.Addr)
	}
	f.Nginx.SetUpstreams(t, ups)
	return g
}

// EdgeURL is the WebSocket URL through nginx.
func (f *Fleet) EdgeURL() string { return "ws://" + f.Nginx.Addr + "/ws/heatmap" }
