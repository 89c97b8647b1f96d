package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	snapArgs    []string
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
	f := &Fleet{Dir: t.TempDir(), gatewayArgs: o.GatewayArgs, snapArgs: o.SnapshotterArgs}
	f.Redis = pkgenv.StartRedis(t)
	f.Snapshotter = f.startSnapshotter(t, "127.0.0.1:0")
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

// DB is the snapshotter's DuckDB file.
func (f *Fleet) DB() string { return filepath.Join(f.Dir, "liqstream.duckdb") }

func (f *Fleet) startSnapshotter(t testing.TB, listen string) *Proc {
	t.Helper()
	return Start(t, "snapshotter", f.Dir, append([]string{
		"--listen=" + listen, "--db=" + f.DB(), "--redis_url=" + f.Redis.URL,
	}, f.snapArgs...)...)
}

// RestartSnapshotter kills the snapshotter with SIGKILL (a crash: no
// shutdown, the DuckDB file left as the kill found it) if it still runs,
// waits down, then starts it again on the same file and address, so the
// gateways' --snapshotter_url reaches it again, and returns once it listens.
func (f *Fleet) RestartSnapshotter(t testing.TB, down time.Duration) *Proc {
	t.Helper()
	f.Snapshotter.Kill()
	time.Sleep(down) // the outage itself, not a synchronisation
	f.Snapshotter = f.startSnapshotter(t, f.Snapshotter.Addr)
	return f.Snapshotter
}

// StartGateway starts one more gateway wired to the fleet's Redis and snapshotter.
func (f *Fleet) StartGateway(t testing.TB, extra ...string) *Proc {
	t.Helper()
	return f.startGateway(t, "127.0.0.1:0", extra...)
}

func (f *Fleet) startGateway(t testing.TB, listen string, extra ...string) *Proc {
	t.Helper()
	args := []string{
		"--listen=" + listen, "--snapshotter_url=http://" + f.Snapshotter.Addr, "--redis_url=" + f.Redis.URL,
		"--ws.trusted_proxies=127.0.0.0/8", "--log_level=debug",
	}
	args = append(append(args, f.gatewayArgs...), extra...)
	return Start(t, "gateway", f.Dir, args...)
}

// RestartGateway starts gateway i again on the address it had, which nginx
// still lists, after it was killed (it is killed with SIGKILL first if it
// still runs), and returns once it listens. Its instance name (host:pid by
// default) is new.
func (f *Fleet) RestartGateway(t testing.TB, i int) *Proc {
	t.Helper()
	old := f.Gateways[i]
	old.Kill()
	f.Gateways[i] = f.startGateway(t, old.Addr)
	return f.Gateways[i]
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

// GatewayInstance is gateway i's instance name, the X-Liqstream-Gateway
// header a client connected to it reads (from its "listening" log line).
func (f *Fleet) GatewayInstance(t testing.TB, i int) string {
	t.Helper()
	line := f.Gateways[i].WaitLog(t, `"msg":"listening"`, time.Second)
	var rec struct {
		Instance string `json:"instance"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Instance == "" {
		t.Fatalf("%s: no instance in %q: %v", f.Gateways[i].Name, line, err)
	}
	return rec.Instance
}

// EdgeURL is the WebSocket URL through nginx.
func (f *Fleet) EdgeURL() string { return "ws://" + f.Nginx.Addr + "/ws/heatmap" }
