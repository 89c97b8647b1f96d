package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// loadCompose loads deploy/compose.yaml as `docker compose config` does:
// the compose-spec loader, schema validation and interpolation included. The
// environment is empty, so every ${VAR:-default} takes its default.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("liqstream", true) })
	if err != nil {
		t.Fatalf("load deploy/compose.yaml: %v", err)
	}
	return p
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

var gateways = []string{"gateway-1", "gateway-2", "gateway-3"}

func TestComposeShape(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)

	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"gateway-1", "gateway-2", "gateway-3", "nginx", "redis", "snapshotter"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}

	for _, n := range names {
		s := p.Services[n]
		t.Run(n+"/restart and image", func(t *testing.T) {
			if s.Restart == "" || s.Restart == "no" {
				t.Errorf("restart policy %q", s.Restart)
			}
			if s.Build != nil {
				df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
				if filepath.Clean(s.Build.Context) != root {
					t.Errorf("build context %s, want the repository root %s", s.Build.Context, root)
				}
				if _, err := os.Stat(df); err != nil {
					t.Errorf("dockerfile: %v", err)
				}
				for _, a := range []string{"VERSION", "REVISION"} {
					if _, ok := s.Build.Args[a]; !ok {
						t.Errorf("build args lack %s", a)
					}
				}
				return
			}
			if why := pinned(s.Image); why != "" {
				t.Errorf("image %s %s", s.Image, why)
			}
		})
	}

	t.Run("nginx", func(t *testing.T) {
		s := p.Services["nginx"]
		published := false
		for _, port := range s.Ports {
			published = published || (port.Target == 8080 && port.Published == "8080")
		}
		if !published {
			t.Errorf("nginx publishes %+v, want host 8080 -> 8080", s.Ports)
		}
		conf := false
		for _, v := range s.Volumes {
			if v.Target == "/etc/nginx/nginx.conf" {
				conf = v.Source == filepath.Join(root, "deploy/compose/nginx.conf") && v.ReadOnly
			}
		}
		if !conf {
			t.Errorf("nginx does not mount deploy/compose/nginx.conf read-only at /etc/nginx/nginx.conf: %+v", s.Volumes)
		}
		for _, g := range gateways {
			if _, ok := s.DependsOn[g]; !ok {
				t.Errorf("nginx does not depend on %s", g)
			}
		}
		if s.HealthCheck == nil {
			t.Error("nginx has no healthcheck")
		}
	})

	t.Run("redis", func(t *testing.T) {
		if p.Services["redis"].HealthCheck == nil {
			t.Error("redis has no healthcheck")
		}
	})

	snap := p.Services["snapshotter"]
	t.Run("snapshotter", func(t *testing.T) {
		checkServiceURL(t, p, env(snap, "LIQSTREAM_REDIS_URL"), "redis", "redis", "6379")
		data := false
		for _, v := range snap.Volumes {
			data = data || (v.Target == "/data" && v.Type == types.VolumeTypeVolume)
		}
		if !data {
			t.Errorf("no named volume at /data: %+v", snap.Volumes)
		}
		if !strings.HasPrefix(env(snap, "LIQSTREAM_DB"), "/data/") {
			t.Errorf("LIQSTREAM_DB %q is not in the /data volume", env(snap, "LIQSTREAM_DB"))
		}
	})

	_, snapPort, _ := net.SplitHostPort(env(snap, "LIQSTREAM_LISTEN"))
	for _, g := range gateways {
		s := p.Services[g]
		t.Run(g, func(t *testing.T) {
			checkServiceURL(t, p, env(s, "LIQSTREAM_REDIS_URL"), "redis", "redis", "6379")
			checkServiceURL(t, p, env(s, "LIQSTREAM_SNAPSHOTTER_URL"), "http", "snapshotter", snapPort)
			if id := env(s, "LIQSTREAM_INSTANCE_ID"); id != g {
				t.Errorf("instance_id %q, want %q", id, g)
			}
			if !s.ReadOnly {
				t.Error("gateway's root filesystem is not read-only")
			}
			// Every network the gateway is on must be a trusted proxy range,
			// or the rate limits and per-IP caps see nginx as every client.
			trusted := strings.Split(env(s, "LIQSTREAM_WS_TRUSTED_PROXIES"), ",")
			for net := range s.Networks {
				nc, ok := p.Networks[net]
				if !ok || len(nc.Ipam.Config) == 0 {
					t.Errorf("network %s has no fixed subnet the gateway could trust", net)
					continue
				}
				for _, pool := range nc.Ipam.Config {
					if !covers(trusted, pool.Subnet) {
						t.Errorf("ws.trusted_proxies %v does not cover network %s (%s)", trusted, net, pool.Subnet)
					}
				}
			}
		})
	}
}

// checkServiceURL checks that raw is scheme://service:port/ naming a service of p.
func checkServiceURL(t *testing.T, p *types.Project, raw, scheme, service, port string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != scheme || u.Hostname() != service || u.Port() != port {
		t.Errorf("%q: want %s://%s:%s", raw, scheme, service, port)
		return
	}
	if _, ok := p.Services[service]; !ok {
		t.Errorf("%q names no service of the project", raw)
	}
}

// covers reports whether one of the CIDRs holds all of subnet.
func covers(cidrs []string, subnet string) bool {
	_, sn, err := net.ParseCIDR(subnet)
	if err != nil {
		return false
	}
	snOnes, _ := sn.Mask.Size()
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			continue
		}
		ones, _ := n.Mask.Size()
		if n.Contains(sn.IP) && ones <= snOnes {
			return true
		}
	}
	return false
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		cidrs  []string
		subnet string
		want   bool
	}{
		{[]string{"172.31.250.0/24"}, "172.31.250.0/24", true},
		{[]string{"10.0.0.0/8", "172.16.0.0/12"}, "172.31.250.0/24", true},
		{[]string{"172.31.250.0/25"}, "172.31.250.0/24", false},
		{[]string{"127.0.0.0/8"}, "172.31.250.0/24", false},
		{[]string{"nonsense"}, "172.31.250.0/24", false},
	} {
		if got := covers(tc.cidrs, tc.subnet); got != tc.want {
			t.Errorf("covers(%v, %s) = %v", tc.cidrs, tc.subnet, got)
		}
	}
}

// binaries builds the services once per test binary run, the way the
// images do (the gateway without cgo), with the repository's go.work.
var binaries = struct {
	once sync.Once
	dir  string
	err  error
}{}

func buildServices(t *testing.T) string {
	t.Helper()
	binaries.once.Do(func() {
		root := repoRoot(t)
		dir, err := os.MkdirTemp("", "liqstream-deploy-bin")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, svc := range []struct{ name, cgo string }{{"gateway", "0"}, {"snapshotter", "1"}} {
			wg.Go(func() {
				cmd := exec.Command("go", "build", "-o", filepath.Join(dir, svc.name), ".")
				cmd.Dir = filepath.Join(root, "services", svc.name)
				// The test runs with GOWORK=off (this module is outside the
				// workspace); the services build inside it.
				cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"), "CGO_ENABLED="+svc.cgo, "GOFLAGS=")
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("go build %s: %v\n%s", svc.name, err, out)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && binaries.err == nil {
				binaries.err = err
			}
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// run runs bin with args and exactly env (plus PATH and HOME), returning its
// exit code and combined output.
func run(t *testing.T, bin string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

var envNameRE = regexp.MustCompile(`\b(LIQSTREAM_[A-Z0-9_]+)\b`)

// knownEnv is every LIQSTREAM_* variable bin reads, from its --help (each
// flag's usage names its variable; --config names LIQSTREAM_CONFIG).
func knownEnv(t *testing.T, bin string) map[string]bool {
	t.Helper()
	code, out := run(t, bin, nil, "--help")
	if code != 0 {
		t.Fatalf("%s --help: exit %d\n%s", bin, code, out)
	}
	known := map[string]bool{}
	for _, m := range envNameRE.FindAllStringSubmatch(out, -1) {
		known[m[1]] = true
	}
	if len(known) < 5 {
		t.Fatalf("%s --help names only %v", bin, known)
	}
	return known
}

// imageEnv is the ENV of a Dockerfile's final stage: what the container has
// before compose's environment is applied.
func imageEnv(t *testing.T, dockerfilePath string) map[string]string {
	t.Helper()
	d, err := parseDockerfile(dockerfilePath, readFile(t, dockerfilePath))
	if err != nil {
		t.Fatal(err)
	}
	e := map[string]string{}
	for _, c := range d.final().Commands {
		if c, ok := c.(*instructions.EnvCommand); ok {
			for _, kv := range c.Env {
				e[kv.Key] = kv.Value
			}
		}
	}
	return e
}

// unknownEnv lists the LIQSTREAM_* names of env that known lacks.
func unknownEnv(env map[string]string, known map[string]bool) []string {
	var bad []string
	for k := range env {
		if strings.HasPrefix(k, "LIQSTREAM_") && !known[k] {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	return bad
}

// Every service built here gets the environment compose gives it (over its
// image's ENV), and the real binary loads and validates it: the names must
// be config keys, the values must pass the service's Validate.
func TestComposeEnvAgainstBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both services")
	}
	p := loadCompose(t)
	dir := buildServices(t)
	for _, name := range []string{"snapshotter", "gateway-1", "gateway-2", "gateway-3"} {
		s := p.Services[name]
		t.Run(name, func(t *testing.T) {
			if s.Build == nil {
				t.Fatal("not built from a Dockerfile")
			}
			service := strings.TrimSuffix(filepath.Base(s.Build.Dockerfile), ".Dockerfile")
			bin := filepath.Join(dir, service)
			e := imageEnv(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
			for k, v := range s.Environment {
				if v != nil {
					e[k] = *v
				}
			}
			if bad := unknownEnv(e, knownEnv(t, bin)); len(bad) > 0 {
				t.Errorf("%s reads no %v (a misspelt or removed config key)", service, bad)
			}
			code, out := run(t, bin, e, "--check-config")
			if code != 0 || !strings.Contains(out, service+": config ok") {
				t.Errorf("%s --check-config with %v: exit %d\n%s", service, e, code, out)
			}
		})
	}
}

// The checks above can fail: a bad value exits 2 naming the key, and a name
// no key has is caught.
func TestComposeEnvChecksCatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both services")
	}
	bin := filepath.Join(buildServices(t), "gateway")
	code, out := run(t, bin, map[string]string{"LIQSTREAM_SNAPSHOTTER_URL": "snapshotter:8081"}, "--check-config")
	if code != 2 || !strings.Contains(out, "snapshotter_url") || strings.Contains(out, "config ok") {
		t.Errorf("bad snapshotter_url: exit %d\n%s", code, out)
	}
	bad := unknownEnv(map[string]string{"LIQSTREAM_REDIS_URL": "x", "LIQSTREAM_REDISURL": "x", "PATH": "/bin"}, knownEnv(t, bin))
	if !slices.Equal(bad, []string{"LIQSTREAM_REDISURL"}) {
		t.Errorf("unknownEnv = %v, want [LIQSTREAM_REDISURL]", bad)
	}
}
