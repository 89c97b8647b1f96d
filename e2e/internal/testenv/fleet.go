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
}

// StartFleet starts the whole fleet with n gateways; nginx renders the
// project's own deploy/nginx/nginx.conf.tmpl.
func StartFleet(t testing.TB, n int, snapArgs ...string) *Fleet {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join(RepoRoot(), "deploy", "nginx", "nginx.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	f := &Fleet{Dir: t.TempDir()}
	f.Redis = pkgenv.StartRedis(t)
	f.Snapshotter = Start(t, "snapshotter", f.Dir, append([]string{
		"--listen=127.0.0.1:0", "--db=" + filepath.Join(f.Dir, "liqstream.duckdb"), "--redis_url=" + f.Redis.URL,
	}, snapArgs...)...)
	var ups []string
	for i := 0; i < n; i++ {
		g := f.StartGateway(t)
		f.Gateways = append(f.Gateways, g)
		ups = append(ups, g.Addr)
	}
	f.Nginx = pkgenv.StartNginx(t, string(tmpl), ups)
	return f
}

// StartGateway starts one more gateway wired to the fleet's Redis and snapshotter.
func (f *Fleet) StartGateway(t testing.TB, extra ...string) *Proc {
	t.Helper()
	return Start(t, "gateway", f.Dir, append([]string{
		"--listen=127.0.0.1:0", "--snapshotter_url=http://" + f.Snapshotter.Addr, "--redis_url=" + f.Redis.URL,
		"--ws.trusted_proxies=127.0.0.0/8", "--log_level=debug",
	}, extra...)...)
}

// EdgeURL is the WebSocket URL through nginx.
func (f *Fleet) EdgeURL() string { return "ws://" + f.Nginx.Addr + "/ws/heatmap" }
